// Real third-party clients against a running Tapestry: node-oscquery (jangxx, used by VRChat tools),
// osc.js (the OSC library Open Stage Control is built on) and ws for OSCQuery LISTEN.
const { OSCQueryDiscovery } = require("oscquery");
const osc = require("osc");
const WebSocket = require("ws");
const http = require("http");
const HOST = "127.0.0.1", WEB = +process.env.WEB_PORT, OSCPORT = +process.env.OSC_PORT;
const get = (p) => new Promise((res, rej) => http.get({ host: HOST, port: WEB, path: p }, r => {
  let b = ""; r.on("data", d => b += d); r.on("end", () => res(JSON.parse(b))); }).on("error", rej));
(async () => {
  const disc = new OSCQueryDiscovery();
  const svc = await disc.queryNewService(HOST, WEB);
  const flat = svc.flat();
  console.log("node-oscquery: host", JSON.stringify(svc.hostInfo), "methods", flat.length);
  const have = new Set(flat.map(m => m.full_path));
  const declared = require("fs").readFileSync(process.env.PARAMS_FILE, "utf8").split("\n").filter(Boolean);
  const missing = declared.filter(p => !have.has(p));
  console.log(`  declared parameters found by the client: ${declared.length - missing.length}/${declared.length}`, missing.slice(0, 5));
  if (missing.length) process.exitCode = 1;
  const withRange = flat.filter(m => m.arguments && m.arguments.length && m.arguments[0].range);
  console.log("  with RANGE", withRange.length, "example", JSON.stringify(flat.find(m => m.full_path === "/tapestry/show/master")));
  // LISTEN on 20 faders, then 20 faders x 60 Hz for 1 s over UDP from osc.js, all ending at 0.25
  const faders = flat.filter(m => m.arguments && m.arguments.length === 1 && m.arguments[0].type === "f"
     && m.access === 3 && !m.full_path.startsWith("/tapestry/show/")).slice(0, 20).map(m => m.full_path);
  const ws = new WebSocket(`ws://${HOST}:${WEB}/`);
  const heard = new Map(); const t0 = {};
  ws.on("message", (data, isBinary) => { if (isBinary) { const m = osc.readPacket(new Uint8Array(data), {metadata:false});
     heard.set(m.address, [m.args[0], Date.now()]); } });
  await new Promise(r => ws.on("open", r));
  for (const f of faders) ws.send(JSON.stringify({ COMMAND: "LISTEN", DATA: f }));
  const udp = new osc.UDPPort({ localAddress: "127.0.0.1", localPort: 0, remoteAddress: HOST, remotePort: OSCPORT, metadata: true });
  const replies = [];
  udp.on("message", m => replies.push(m.address));
  await new Promise(r => { udp.on("ready", r); udp.open(); });
  const lo = {}, hi = {};
  for (const m of flat) if (faders.includes(m.full_path)) { lo[m.full_path] = m.arguments[0].range.min; hi[m.full_path] = m.arguments[0].range.max; }
  for (let i = 0; i < 60; i++) {
    for (const f of faders) {
      const v = i === 59 ? 0.25 : Math.random();
      udp.send({ address: f + "/norm", args: [{ type: "f", value: v }] });
    }
    await new Promise(r => setTimeout(r, 1000 / 60));
  }
  const sent = Date.now();
  await new Promise(r => setTimeout(r, 1500));
  let ok = 0;
  for (const f of faders) {
    const node = await get(f);
    const want = lo[f] + 0.25 * (hi[f] - lo[f]);
    const v = node.VALUE[0];
    if (Math.abs(v - want) <= 1e-4 * Math.max(1, Math.abs(hi[f] - lo[f]))) ok++; else console.log("  off:", f, v, "want", want);
  }
  console.log(`osc.js: 20 faders x 60 Hz x 1 s (${faders.length * 60} datagrams); ended at 0.25: ${ok}/${faders.length}`);
  const lastHeard = faders.map(f => heard.get(f)).filter(Boolean);
  console.log(`ws LISTEN: heard ${heard.size}/${faders.length} faders; last change arrived ${Math.max(...lastHeard.map(h => h[1])) - sent} ms after the last send`);
  console.log("replies to osc.js (first 5 addresses):", [...new Set(replies)].slice(0, 5));
  ws.close(); udp.close(); process.exit(ok === faders.length && !process.exitCode ? 0 : 1);
})().catch(e => { console.error("FAILED:", e.message); process.exit(2); });
