"""Scaffolding shared by the test suites: loopback UDP receivers, network namespaces, child processes.

Imported as ``tests.support`` (``tests/conftest.py`` puts the repository root on ``sys.path``); no module
here is named ``test_*``, so pytest never collects it as tests.
"""
