"""Mark the canvas corners by clicking on the camera's view in a browser (``run.py map --corners pick``).

The mapping machine often has no screen: the installer stands at the piece with a laptop or a tablet.
:class:`CornerPicker` serves one small page on the address given (``127.0.0.1`` by default; ``0.0.0.0``
for a tablet on the venue network) with the camera frame; four clicks mark the canvas corners top-left,
top-right, bottom-right, bottom-left; the page sends them and the server checks them (inside the
picture, a convex quadrilateral, clockwise from the top-left) before the mapping run uses them.  The same
corners are printed as a ``--corners`` argument, so the next run needs no clicking.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

MAX_BODY = 4096
NAMES = ("top-left", "top-right", "bottom-right", "bottom-left")


class PickError(ValueError):
    """The marked corners cannot be used; the message says why, for the installer."""


def check_corners(points, size: tuple[int, int]) -> np.ndarray:
    """Validate four clicked points (image pixels) for a picture of ``size`` (w, h); returns them (4, 2).

    Refuses points outside the picture, three in a line, a crossed quadrilateral and the wrong order:
    the canvas corners must go clockwise (as seen on the picture) from the top-left.
    """
    try:
        pts = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        raise PickError("corners must be four [x, y] pairs") from None
    if pts.shape != (4, 2) or not np.isfinite(pts).all():
        raise PickError(f"mark exactly four corners ({', '.join(NAMES)}); got {len(pts) if pts.ndim else 0}")
    w, h = size
    for name, (x, y) in zip(NAMES, pts):
        if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            raise PickError(f"the {name} corner ({x:.0f}, {y:.0f}) is outside the {w}x{h} picture")
    edges = np.roll(pts, -1, axis=0) - pts
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    side = math.hypot(w, h)
    if np.any(np.abs(turns) < 1e-4 * side * side):
        raise PickError("three of the corners are in a line: mark the four corners of the canvas")
    if not (np.all(turns > 0) or np.all(turns < 0)):
        raise PickError("the corners cross or fold in: mark them in order top-left, top-right, bottom-right, "
                        "bottom-left")
    if np.all(turns < 0):   # picture coordinates have y down: clockwise on screen turns positive
        raise PickError("the corners go anticlockwise: mark them in order top-left, top-right, bottom-right, "
                        "bottom-left")
    return pts


def as_argument(pts: np.ndarray) -> str:
    """The corners as a ``--corners`` value."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Tapestry map: mark the canvas corners</title>
<style>
 body{margin:0;font:16px system-ui,sans-serif;background:#111;color:#eee}
 header{padding:.6em 1em} #wrap{position:relative;display:inline-block;margin:0 1em;touch-action:none}
 #view{display:block;cursor:crosshair}
 svg{position:absolute;left:0;top:0;width:100%;height:100%;pointer-events:none;overflow:visible}
 button{font:inherit;margin:.5em .5em 0 0;padding:.4em 1em} #msg{min-height:1.4em;margin:.5em 1em}
 .err{color:#f77} .ok{color:#7f7}
</style></head><body>
<header><b>Mark the canvas corners</b> on the camera's view, in order:
<span id="next">top-left</span>.
<div><button id="undo" type="button">Undo</button><button id="send" type="button" disabled>Use these corners</button></div>
</header>
<div id="wrap"><img id="view" src="view.png" alt="the camera's view with every LED dimly on">
<svg id="marks" viewBox="0 0 1 1" preserveAspectRatio="none"></svg></div>
<div id="msg"></div>
<script>
const names=["top-left","top-right","bottom-right","bottom-left"];
const img=document.getElementById("view"), svg=document.getElementById("marks");
const msg=document.getElementById("msg"), send=document.getElementById("send");
let pts=[];
function draw(){
  const w=img.naturalWidth||1, h=img.naturalHeight||1;
  svg.setAttribute("viewBox",`0 0 ${w} ${h}`);
  const r=Math.max(w,h)/120, p=pts.map(q=>q.join(",")).join(" ");
  svg.innerHTML=(pts.length>1?`<polygon points="${p}" fill="rgba(255,220,0,.12)" stroke="#fd0" stroke-width="${r/3}"/>`:"")+
    pts.map((q,i)=>`<circle cx="${q[0]}" cy="${q[1]}" r="${r}" fill="none" stroke="#0f0" stroke-width="${r/3}"/>`+
      `<text x="${q[0]+(q[0]>w/2?-r*1.5:r*1.5)}" y="${q[1]+(q[1]>h/2?r*4:-r*1.5)}" fill="#0f0" font-size="${r*3}" `+
      `text-anchor="${q[0]>w/2?"end":"start"}">${names[i]}</text>`).join("");
  document.getElementById("next").textContent=pts.length<4?names[pts.length]:"done: press Use these corners";
  send.disabled=pts.length!==4;
}
img.addEventListener("pointerdown",e=>{
  if(pts.length>=4)return;
  const b=img.getBoundingClientRect();
  pts.push([(e.clientX-b.left)*img.naturalWidth/b.width-0.5,(e.clientY-b.top)*img.naturalHeight/b.height-0.5]);
  msg.textContent="";draw();
});
document.getElementById("undo").onclick=()=>{pts.pop();msg.textContent="";draw();};
send.onclick=async()=>{
  try{
    const r=await fetch("corners",{method:"POST",headers:{"Content-Type":"application/json"},body:JSON.stringify({corners:pts})});
    const d=await r.json();
    msg.className=r.ok?"ok":"err";
    msg.textContent=r.ok?`Mapping goes on with --corners "${d.corners}"`:d.error;
    if(r.ok)send.disabled=true;
  }catch(err){msg.className="err";msg.textContent="could not reach the mapping run: "+err;}
};
function fit(){   // as large as the window allows, aspect kept (a small camera picture is hard to click)
  const w=img.naturalWidth, h=img.naturalHeight; if(!w)return;
  const k=Math.min((window.innerWidth-32)/w,(window.innerHeight*0.75)/h);
  img.style.width=Math.max(1,Math.floor(w*k))+"px"; img.style.height=Math.max(1,Math.floor(h*k))+"px";
}
img.addEventListener("load",()=>{fit();draw();});
window.addEventListener("resize",fit);
</script></body></html>
"""


class CornerPicker:
    """A one-page HTTP server showing ``frame`` (BGR or grey) until four valid corners are posted.

    ``start()`` returns the URL; ``wait(timeout_s)`` returns the corners (4, 2) in image pixels, or None
    on timeout; ``close()`` stops the server.  Bad submissions get HTTP 400 with the reason and the
    server keeps waiting.
    """

    def __init__(self, frame: np.ndarray, host: str = "127.0.0.1", port: int = 0) -> None:
        img = np.clip(np.asarray(frame, np.float32), 0, 255).astype(np.uint8)
        ok, png = cv2.imencode(".png", img)
        if not ok:
            raise PickError("cannot encode the camera frame as PNG")
        self.size = (int(img.shape[1]), int(img.shape[0]))
        self._png = png.tobytes()
        self._done = threading.Event()
        self.corners: np.ndarray | None = None
        picker = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:   # no access log on the installer's terminal
                pass

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, doc: dict) -> None:
                self._send(code, json.dumps(doc).encode(), "application/json")

            def do_GET(self) -> None:   # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(200, PAGE.encode(), "text/html; charset=utf-8")
                elif path == "/view.png":
                    self._send(200, picker._png, "image/png")
                else:
                    self._json(404, {"error": f"no such page {path}"})

            def do_POST(self) -> None:  # noqa: N802
                if self.path.split("?", 1)[0] != "/corners":
                    self._json(404, {"error": "post the corners to /corners"})
                    return
                try:
                    n = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    n = -1
                if not 0 < n <= MAX_BODY:
                    self._json(400, {"error": f"send a JSON body of at most {MAX_BODY} bytes"})
                    return
                try:
                    doc = json.loads(self.rfile.read(n))
                    pts = check_corners(doc.get("corners") if isinstance(doc, dict) else None, picker.size)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self._json(400, {"error": "the body is not JSON"})
                    return
                except PickError as exc:
                    self._json(400, {"error": str(exc)})
                    return
                picker.corners = pts
                self._json(200, {"corners": as_argument(pts)})
                picker._done.set()

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise PickError(f"cannot serve the corner page on {host}:{port}: {exc.strerror or exc}") from None
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the page is served on (the OS's choice when 0 was asked)."""
        return int(self._server.server_address[1])

    def start(self) -> str:
        """Serve in the background; returns the page's URL (for 0.0.0.0, this machine's loopback)."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="corner-picker", daemon=True)
        self._thread.start()
        host = self._server.server_address[0]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.port}/"

    def wait(self, timeout_s: float | None = None) -> np.ndarray | None:
        """Block until valid corners arrive (returns them) or ``timeout_s`` passes (returns None)."""
        return self.corners if self._done.wait(timeout_s) else None

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(2.0)
        self._server.server_close()
