"""Every lecture notebook, run in JupyterLab inside a real Chromium.

For each ``notebooks/*.ipynb`` (discovered by glob): open it in one shared
JupyterLab server, run all cells, wait until every cell has executed, assert that
no cell raised (error outputs, a Python traceback on stderr) and that no widget
failed to display, then move one control of every explorer in the browser (a key
press on a slider handle, a click on a toggle button...) and assert that the
explorer's ``<img>`` changed (an image with no controls next to it, such as a
live training curve, only has to be displayed). This is the one test that exercises the widget
front end (ipywidgets' JupyterLab manager) and the kernel round trip together.

Requirements: Debian's Chromium (``tools/install-browser.sh``), the Python
package ``playwright`` (used with that Chromium; never ``playwright install``)
and ``jupyterlab``. When one is missing the test is skipped, except when the
environment variable ``CI`` is set: then it fails.

Nothing is written into the repository: the server gets a temporary root folder
holding copies of the notebooks, and temporary HOME / Jupyter / IPython folders.

Environment variables:
    COURSE_BROWSER_NOTEBOOKS  a glob of notebooks to test instead of notebooks/*.ipynb
    COURSE_CHROMIUM           the Chromium executable (default: ``chromium`` on PATH)

Run: ``pytest -m browser tests/test_browser.py -v``
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]

SERVER_START_S = 90  # JupyterLab up and answering
KERNEL_READY_S = 120  # notebook opened, kernel idle
RUN_ALL_S = 240  # every cell executed (notebooks must take < 60 s; leave room)
WIDGET_CHANGE_S = 15  # one control step seen in the browser's <img>


# --- discovery and requirements -----------------------------------------------------


def _notebooks() -> List[Path]:
    pattern = os.environ.get("COURSE_BROWSER_NOTEBOOKS")
    if pattern:
        if not os.path.isabs(pattern):
            pattern = str(REPO / pattern)
        found = glob.glob(pattern)
    else:
        found = glob.glob(str(REPO / "notebooks" / "*.ipynb"))
    return sorted(Path(p).resolve() for p in found if ".ipynb_checkpoints" not in p)


NOTEBOOKS = _notebooks()


def _chromium() -> Optional[str]:
    exe = os.environ.get("COURSE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None


def browser_missing() -> List[str]:
    """What the browser test lacks on this machine ([] when it can run)."""
    missing = []
    if _chromium() is None:
        missing.append("Chromium (install it with tools/install-browser.sh, or set COURSE_CHROMIUM)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the Python package playwright (pip install -e '.[dev]'; do not run `playwright install`)")
    if importlib.util.find_spec("jupyterlab") is None:
        missing.append("the Python package jupyterlab (pip install -e '.[dev]')")
    return missing


def _require() -> None:
    """Skip (or, when ``CI`` is set, fail) when a requirement is missing."""
    missing = browser_missing()
    if missing:
        msg = "browser test needs " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(msg)


# --- the JupyterLab server ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A JupyterLab process on a loopback port with a known token."""

    def __init__(
        self, proc: subprocess.Popen, port: int, token: str, log: Path, rel: Dict[Path, str]
    ) -> None:
        self.proc, self.port, self.token, self.log = proc, port, token, log
        self.rel = rel  # notebook -> its path relative to the server's root folder
        self.base = f"http://127.0.0.1:{port}"

    def api(self, method: str, path: str) -> Any:
        req = urllib.request.Request(
            self.base + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(lines[-n:])

    def shutdown_kernels(self) -> None:
        """Delete every session and kernel (the notebooks' kernels run in their own sessions)."""
        try:
            for session in self.api("GET", "/api/sessions") or []:
                self.api("DELETE", f"/api/sessions/{session['id']}")
            for kernel in self.api("GET", "/api/kernels") or []:
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
        except (urllib.error.URLError, OSError):
            pass


def _write_lab_settings(config_dir: Path) -> None:
    """Render every cell (no virtual scrolling) and never fetch news or updates."""
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab"
    files = {
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    }
    for rel, value in files.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def _copy_notebooks(root: Path) -> Dict[Path, str]:
    """Copy each notebook's folder into ``root``; return {notebook: path relative to root}."""
    rel: Dict[Path, str] = {}
    for nb in NOTEBOOKS:
        dest = root / nb.parent.name
        if not dest.exists():
            shutil.copytree(
                nb.parent, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
            )
        rel[nb] = f"{nb.parent.name}/{nb.name}"
    return rel


@pytest.fixture(scope="module")
def lab() -> Iterator[LabServer]:
    _require()
    tmp = Path(tempfile.mkdtemp(prefix="course-browser-"))
    root, home = tmp / "root", tmp / "home"
    for d in (root, home):
        d.mkdir()
    config_dir = tmp / "jupyter-config"
    _write_lab_settings(config_dir)
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
        MPLCONFIGDIR=str(tmp / "matplotlib"),
        MPLBACKEND="agg",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
    )
    port, token = _free_port(), uuid.uuid4().hex
    log = tmp / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root", "--expose-app-in-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    rel = _copy_notebooks(root)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=str(root), env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = LabServer(proc, port, token, log, rel)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                server.api("GET", "/api/status")
                break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{server.log_tail()}", pytrace=False)
            time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            server.shutdown_kernels()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        try:  # anything the server left in its own process group (pgid == its pid)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(lab: LabServer) -> Iterator[Any]:
    """One Chromium and one browsing context (shared HTTP cache: JupyterLab's bundles load once)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b.new_context(viewport={"width": 1400, "height": 1000})
        finally:
            b.close()


# --- what the page is asked ---------------------------------------------------------

# The JupyterLab app object is exposed as window.jupyterapp (--expose-app-in-browser).
JS_PANEL = """
(path) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.sessionContext) return w;
  }
  return null;
}
"""

JS_KERNEL_READY = (
    """
(path) => {
  const panel = (%s)(path);
  if (!panel || !panel.context.isReady || !panel.sessionContext.isReady) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}
"""
    % JS_PANEL
)

# The notebook's state from its model (not from rendered text, which also holds sources).
JS_STATE = (
    """
(path) => {
  const panel = (%s)(path);
  if (!panel) return {found: false};
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = [];
  panel.content.widgets.forEach((cell, index) => {
    const model = cell.model;
    if (model.type !== 'code') return;
    const outputs = model.outputs.toJSON();
    cells.push({
      index: index,
      empty: model.sharedModel.getSource().trim() === '',
      count: model.executionCount,
      errors: outputs.filter(o => o.output_type === 'error')
                     .map(o => o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n')),
      stderr: outputs.filter(o => o.output_type === 'stream' && o.name === 'stderr')
                     .map(o => Array.isArray(o.text) ? o.text.join('') : o.text).join(''),
    });
  });
  const node = panel.content.node;
  return {
    found: true,
    status: kernel ? kernel.status : 'none',
    cells: cells,
    domOutputs: node.querySelectorAll('.jp-OutputArea-output').length,
    widgetErrors: Array.from(node.querySelectorAll('.jp-OutputArea-output'))
                       .filter(e => e.textContent.includes('Error displaying widget')).length,
    images: node.querySelectorAll('img.widget-image').length,
  };
}
"""
    % JS_PANEL
)

# Tag every explorer image, and up to three controls of its box (sliders first), so that
# the test can press a key on / click them through Playwright (real input events).
JS_TAG_CONTROLS = (
    """
(path) => {
  const panel = (%s)(path);
  const found = [];
  panel.content.node.querySelectorAll('img.widget-image').forEach((img, k) => {
    img.setAttribute('data-bt-img', String(k));
    const box = img.closest('.widget-vbox') || img.parentElement;
    const candidates = [];
    box.querySelectorAll('.noUi-handle, .ui-slider-handle').forEach(h => {
      const now = parseFloat(h.getAttribute('aria-valuenow')), max = parseFloat(h.getAttribute('aria-valuemax'));
      candidates.push([h, now >= max ? 'ArrowLeft' : 'ArrowRight']);
    });
    box.querySelectorAll('input[type=range]').forEach(r => {
      candidates.push([r, parseFloat(r.value) >= parseFloat(r.max) ? 'ArrowLeft' : 'ArrowRight']);
    });
    box.querySelectorAll('.widget-toggle-buttons').forEach(t => {
      const b = t.querySelector('.widget-toggle-button:not(.mod-active)');
      if (b) candidates.push([b, 'click']);
    });
    box.querySelectorAll('select').forEach(s => candidates.push([s, 'select']));
    box.querySelectorAll('input[type=checkbox]').forEach(c => candidates.push([c, 'click']));
    const actions = candidates.slice(0, 3).map(([el, action], j) => {
      el.setAttribute('data-bt-control', k + '-' + j);
      return action;
    });
    found.push({index: k, actions: actions, src: img.getAttribute('src') || ''});
  });
  return found;
}
"""
    % JS_PANEL
)


def _describe(state: Dict[str, Any]) -> str:
    cells = state.get("cells", [])
    done = sum(1 for c in cells if c["count"] is not None)
    return f"kernel {state.get('status')}, {done}/{len(cells)} code cells executed"


def _plain(text: str) -> str:
    """``text`` without ANSI colour codes (tracebacks are coloured)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _tracebacks(state: Dict[str, Any]) -> List[str]:
    """Error outputs, and Python tracebacks printed on stderr, as readable messages."""
    found = []
    for cell in state["cells"]:
        for err in cell["errors"]:
            found.append(f"code cell {cell['index']} raised {_plain(err)[-3000:]}")
        if "Traceback (most recent call last)" in cell["stderr"]:
            found.append(f"code cell {cell['index']} printed a traceback on stderr:\n{_plain(cell['stderr'])[-3000:]}")
    return found


def _finished(state: Dict[str, Any]) -> bool:
    if not state.get("found") or state["status"] != "idle":
        return False
    if _tracebacks(state):
        return True  # Run All stops at the first error
    return all(c["count"] is not None for c in state["cells"] if not c["empty"])


def _run_all(page: Any, path: str) -> Dict[str, Any]:
    """Clear outputs, run every cell, wait until all ran (or one failed); return the state."""
    page.evaluate(
        "(path) => { const p = (%s)(path); window.jupyterapp.shell.activateById(p.id); }" % JS_PANEL, path
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    for command in ("notebook:run-all-cells", "runmenu:run-all"):  # retry once: a no-op was seen
        page.evaluate("(c) => { window.jupyterapp.commands.execute(c); }", command)
        deadline = time.monotonic() + 10
        started = False
        while time.monotonic() < deadline:  # did Run All do anything?
            state = page.evaluate(JS_STATE, path)
            if state["status"] != "idle" or any(c["count"] is not None for c in state["cells"]):
                started = True
                break
            page.wait_for_timeout(250)
        if started:
            break
    else:
        pytest.fail(f"Run All did nothing (tried twice): {_describe(state)}", pytrace=False)

    deadline = time.monotonic() + RUN_ALL_S
    stable = 0
    while True:
        state = page.evaluate(JS_STATE, path)
        stable = stable + 1 if _finished(state) else 0
        if stable >= 3:  # the same verdict three polls in a row: not a gap between two cells
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"notebook did not finish within {RUN_ALL_S} s: {_describe(state)}", pytrace=False)
        page.wait_for_timeout(300)


def _console_collector(page: Any) -> List[str]:
    messages: List[str] = []
    page.on("pageerror", lambda exc: messages.append(f"page error: {exc}"))
    page.on("console", lambda msg: messages.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    return messages


# --- the test -----------------------------------------------------------------------


def _wait_js(page: Any, expression: str, arg: Any, timeout_s: float) -> bool:
    """Wait until ``expression(arg)`` is truthy in the page; False on timeout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000, polling=100)
        return True
    except PlaywrightTimeout:
        return False


def _move_control(page: Any, tag: str, action: str) -> None:
    """Press a key on / click / select the next option of the control tagged ``tag``."""
    control = page.locator(f'[data-bt-control="{tag}"]')
    control.scroll_into_view_if_needed()
    if action == "click":
        control.click()
    elif action == "select":
        values = control.locator("option").evaluate_all("os => os.map(o => o.value)")
        if len(values) < 2:
            return  # nothing to change; the next candidate control is tried
        current = control.input_value()
        control.select_option(values[(values.index(current) + 1) % len(values)] if current in values else values[0])
    else:
        control.focus()
        control.press(action)


JS_SRC_CHANGED = """
([k, before]) => {
  const img = document.querySelector(`img[data-bt-img="${k}"]`);
  return !!img && (img.getAttribute('src') || '') !== before;
}
"""


PARAMS = [pytest.param(nb, id=nb.stem) for nb in NOTEBOOKS] or [pytest.param(None, id="no-notebooks")]


@pytest.mark.parametrize("notebook", PARAMS)
def test_notebook_in_browser(notebook: Optional[Path], lab: LabServer, browser: Any) -> None:
    if notebook is None:
        msg = "no notebooks found (notebooks/*.ipynb or $COURSE_BROWSER_NOTEBOOKS)"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    path = lab.rel[notebook]
    times = {"start": time.monotonic()}
    page = browser.new_page()
    console = _console_collector(page)

    def fail(msg: str) -> None:
        tail = "\n".join(console[-10:])
        pytest.fail(f"{path}: {msg}" + (f"\nbrowser console:\n{tail}" if tail else ""), pytrace=False)

    try:
        # 1. open the notebook in a fresh workspace (nothing restored from an earlier test)
        workspace = f"bt-{uuid.uuid4().hex[:8]}"
        page.goto(f"{lab.base}/lab/workspaces/{workspace}/tree/{path}?token={lab.token}")
        if not _wait_js(page, JS_KERNEL_READY, path, KERNEL_READY_S):
            fail(f"notebook or kernel not ready within {KERNEL_READY_S} s.\nserver log:\n{lab.log_tail()}")
        times["kernel"] = time.monotonic()

        # 2. Run All; no error output, no traceback; stderr (warnings, progress bars) is allowed
        state = _run_all(page, path)
        times["run"] = time.monotonic()
        problems = _tracebacks(state)
        if problems:
            fail("\n".join(problems))
        for cell in state["cells"]:
            if cell["stderr"].strip():
                text = _plain(cell["stderr"]).strip()[:300]
                warnings.warn(f"{path}: code cell {cell['index']} wrote to stderr: {text}")

        # 3. outputs rendered, explorers displayed by the widget manager (not its PNG fallback)
        if not _wait_js(page, "() => document.querySelectorAll('.jp-OutputArea-output').length > 0", None, 10):
            fail("no output area was rendered")
        if not _wait_js(page, "() => !!document.querySelector('.jp-Notebook img.widget-image[src]')", None, 20):
            state = page.evaluate(JS_STATE, path)
            fail(
                f"no explorer widget was rendered ({state['widgetErrors']} 'Error displaying widget', "
                f"{state['domOutputs']} outputs); every lecture notebook shows at least one explorer"
            )
        state = page.evaluate(JS_STATE, path)
        if state["widgetErrors"]:
            fail(f"{state['widgetErrors']} output(s) say 'Error displaying widget'")

        # 4. move a control of every explorer in the browser; its image must change. The first
        #    control (a slider when there is one) normally does it; up to two more are tried.
        #    An image without controls (a live training curve) is display-only and skipped.
        moved, display_only = [], []
        for ex in page.evaluate(JS_TAG_CONTROLS, path):
            k, before = ex["index"], ex["src"]
            if not before:
                fail(f"explorer image #{k} has no src")
            if not ex["actions"]:
                display_only.append(f"#{k}")
                continue
            for j, action in enumerate(ex["actions"]):
                _move_control(page, f"{k}-{j}", action)
                if _wait_js(page, JS_SRC_CHANGED, [k, before], WIDGET_CHANGE_S):
                    moved.append(f"#{k} {action}" + (f" (control {j + 1})" if j else ""))
                    break
            else:
                fail(
                    f"explorer #{k}: moving its controls ({', '.join(ex['actions'])}) did not change its image "
                    f"within {WIDGET_CHANGE_S} s each"
                )
        if not moved:
            fail(
                f"no explorer with a slider, toggle buttons, dropdown or checkbox was found "
                f"(display-only images: {', '.join(display_only)})"
            )
        times["widgets"] = time.monotonic()

        state = page.evaluate(JS_STATE, path)
        problems = _tracebacks(state)
        if problems:
            fail("after moving the controls:\n" + "\n".join(problems))
        if state["widgetErrors"]:
            fail("'Error displaying widget' after moving the controls")
        print(
            f"{path}: {len(state['cells'])} code cells; explorers moved: {', '.join(moved)}"
            + (f" (display-only: {', '.join(display_only)})" if display_only else "")
            + "; "
            f"open+kernel {times['kernel'] - times['start']:.1f} s, run all {times['run'] - times['kernel']:.1f} s, "
            f"widgets {times['widgets'] - times['run']:.1f} s, total {times['widgets'] - times['start']:.1f} s"
        )
    finally:
        page.close()
        lab.shutdown_kernels()
