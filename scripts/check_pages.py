"""Open pages of the built book in headless Chromium and check that what a reader sees loads.

Usage:
    python scripts/check_pages.py [--build-dir _build/html] [--screenshots DIR] [--jobs 3] [PAGE ...]

PAGE is a path inside the build (default: book/intro.html and every notebooks/*.html page).
The build is served on 127.0.0.1 (a random port) and each page is loaded in a new tab of a headless
Chromium (one per worker, reused) driven through the DevTools protocol (no Selenium needed: ``websocket-client`` comes with
Jupyter). A page passes when

* the page itself answers 200;
* no resource from the book's own server answers 400 or more (a 404 is a missing file) or fails;
* its text (the ``<article>``) shows at least one image of its own (unless ``--allow-no-figures``),
  and every image of its own finished loading with a ``naturalWidth`` above 0 (a figure that is
  missing or broken shows as an empty box);
* no paragraph of its text is a Markdown table left as text (a table that a notebook printed as
  ``text/markdown`` shows as rows of pipes when the book renders output Markdown as CommonMark);
* every figure of its text is legible at the width the page gives it: its smallest text, which
  the notebook's kernel measured when it drew the figure (``scripts.figure_metrics``, stored
  in a PNG's text chunks or a JPEG's comment by ``scripts/execute_notebooks.py``, and by
  ``scripts/make_figures.py`` for the Markdown pages' images), times the image's CSS width over
  its natural width, is at least ``--min-text-px`` (9) CSS pixels, and no title, label or tick
  label of one panel covers another panel; a PNG or JPEG without measurements fails (made outside
  those scripts) unless ``--allow-unmeasured``;
* no code block (``pre``, hidden cells opened) is wider than the column: a line that does not fit
  makes the reader scroll sideways.

Resources on other hosts (the Colab badge, fonts or scripts from CDNs) cannot load offline; they are
counted and listed, not failed. Exit status: 0 when every page passes, 1 otherwise, 2 when Chromium
is missing (install Debian's ``chromium`` package).
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import functools
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PAGES = ["book/intro.html", "notebooks/*.html"]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--window-size=1280,1600", "--remote-debugging-port=0",
]
# Wait for every image of the page; lazy ones are made eager so that they load without scrolling.
IMAGES_JS = """(async () => {
  const images = [...document.images];
  for (const img of images) {
    img.loading = "eager";
    if (!img.complete) {
      await new Promise(done => { img.addEventListener("load", done); img.addEventListener("error", done);
                                  setTimeout(done, 10000); });
    }
  }
  const article = document.querySelector("article") || document.body;
  return images.map(img => ({src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth,
                             figure: article.contains(img)}));
})()"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


# Seconds to wait for Chromium to answer one DevTools call.
CALL_TIMEOUT = 60


class _DevTools:
    """A minimal DevTools protocol client over one page's websocket."""

    def __init__(self, url: str) -> None:
        import websocket  # websocket-client, a dependency of Jupyter

        self.ws = websocket.create_connection(url, timeout=CALL_TIMEOUT, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params: Any) -> dict:
        # The reads of wait_for and drain shorten the socket's timeout; an answer may take longer
        # (a script that awaits every image, on a busy machine).
        self.ws.settimeout(CALL_TIMEOUT)
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float) -> bool:
        """Read events until ``method`` arrives (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return True
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                message = json.loads(self.ws.recv())
            except Exception:  # the websocket's timeout
                break
            self.events.append(message)
            if message.get("method") == method:
                return True
        return False

    def drain(self, quiet_for: float = 0.5, timeout: float = 10.0) -> None:
        """Read events until none arrives for ``quiet_for`` seconds (the network has settled)."""
        deadline = time.monotonic() + timeout
        self.ws.settimeout(quiet_for)
        while time.monotonic() < deadline:
            try:
                self.events.append(json.loads(self.ws.recv()))
            except Exception:
                return

    def close(self) -> None:
        self.ws.close()


def _start_chromium(chromium: str, profile: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return process, int(port_file.read_text().split()[0])
        if process.poll() is not None:
            raise RuntimeError(f"Chromium exited with status {process.returncode} before opening DevTools")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("Chromium did not open its DevTools port within 60 s")


class Browser:
    """One headless Chromium, started once and reused for several pages, each in a tab of its own.

    Starting Chromium costs about as much CPU as checking a page, so each of ``main``'s workers
    keeps one browser for all its pages, and a later ``main`` in the same process (the tests call
    it many times) takes the browsers an earlier one left running.
    """

    def __init__(self, chromium: str) -> None:
        # Chromium may still be writing its profile as it exits: a leftover file is no failure.
        self._profile = tempfile.TemporaryDirectory(prefix="check-pages-", ignore_cleanup_errors=True)
        self.process, self.port = _start_chromium(chromium, Path(self._profile.name))

    def open_tab(self) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def close_tab(self, tab: dict) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/close/{tab['id']}", timeout=30):
            pass

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._profile.cleanup()


# Browsers that a finished ``main`` left running for the next one in this process; closed at exit.
IDLE_BROWSERS: list[Browser] = []


@atexit.register
def _close_idle_browsers() -> None:
    for each in IDLE_BROWSERS:
        each.close()


# Paragraphs of the text that hold a pipe table's separator row ("|---|", or "|—|" once
# smart quotes have turned the dashes into one).
RAW_TABLES_JS = """(() => {
  const article = document.querySelector("article") || document.body;
  return [...article.querySelectorAll("p")].map(p => p.textContent.trim())
    .filter(text => text.startsWith("|") && /\\|\\s*:?(-{3,}|[\u2013\u2014]+):?\\s*\\|/.test(text))
    .map(text => text.slice(0, 60));
})()"""


# Every image of the text as shown (CSS width) and as stored (natural width); every code block
# whose content is wider than its box, with its longest line. Hidden cells are opened first, so
# that what a reader sees on opening them is measured too.
LAYOUT_JS = """(() => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const article = document.querySelector("article") || document.body;
  const figures = [...article.querySelectorAll("img")].map(img => ({
    src: img.currentSrc || img.src, natural: img.naturalWidth, css: img.getBoundingClientRect().width}));
  const wide = [...article.querySelectorAll("pre")].filter(pre => pre.clientWidth > 0
      && pre.scrollWidth > pre.clientWidth + 1).map(pre => {
    const lines = pre.textContent.split("\\n");
    const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
    return {scroll: pre.scrollWidth, client: pre.clientWidth, longest: longest.slice(0, 100),
            chars: longest.length};
  });
  let columnChars = null;
  const pre = article.querySelector("div.cell_input pre") || article.querySelector("pre");
  if (pre) {
    const probe = document.createElement("span");
    probe.textContent = "x".repeat(100);
    pre.appendChild(probe);
    const style = getComputedStyle(pre);
    const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    columnChars = Math.floor(inner / (probe.getBoundingClientRect().width / 100));
    probe.remove();
  }
  return {figures, wide, columnChars};
})()"""


# Figures the notebooks' kernel (and scripts/make_figures.py) stores measurements in; an SVG is not checked.
MEASURED_SUFFIXES = (".png", ".jpg", ".jpeg")


def figure_problems(figures: list[dict], base_url: str, build_dir: Path, min_text_px: float,
                    allow_unmeasured: bool) -> tuple[list[str], list[str]]:
    """Problems of the page's own figures as shown: text below ``min_text_px``, overlaps, no measurements."""
    from scripts.figure_metrics import read_figure_metrics

    problems: list[str] = []
    smallest: list[float] = []
    unmeasured = 0
    for figure in figures:
        src = figure["src"]
        if not src.startswith(base_url) or not figure["natural"] or not figure["css"]:
            continue  # not ours, broken (reported above) or not shown
        path = build_dir / urllib.parse.unquote(urllib.parse.urlsplit(src).path).lstrip("/")
        name = urllib.parse.urlsplit(src).path.rsplit("/", 1)[-1]
        measurable = path.suffix.lower() in MEASURED_SUFFIXES and path.is_file()
        metrics = read_figure_metrics(path.read_bytes()) if measurable else None
        if metrics is None:
            unmeasured += 1
            if not allow_unmeasured and measurable:
                problems.append(f"figure {name} carries no text measurements (execute its notebook with "
                                "scripts/execute_notebooks.py, make a Markdown page's image with "
                                "scripts/make_figures.py, or pass --allow-unmeasured)")
            continue
        scale = figure["css"] / figure["natural"]
        if metrics["min_text_px"] is not None:
            shown = metrics["min_text_px"] * scale
            smallest.append(shown)
            if shown < min_text_px:
                problems.append(
                    f"figure {name}: smallest text {metrics['smallest_text']} shows {shown:.1f} CSS px "
                    f"(< {min_text_px:g}): drawn {figure['natural']} px wide, shown {figure['css']:.0f} px; "
                    "draw it narrower (figsize) or its text larger")
        for overlap in metrics["overlaps"]:
            problems.append(f"figure {name}: {overlap}")
    notes = []
    if smallest:
        notes.append(f"smallest figure text {min(smallest):.1f} CSS px")
    if unmeasured:
        notes.append(f"{unmeasured} figure(s) without measurements")
    return problems, notes


def check_page(browser: Browser, base_url: str, page: str, screenshot_dir: Path | None,
               require_figures: bool = True, build_dir: Path | None = None, min_text_px: float = 9.0,
               allow_unmeasured: bool = False, settle: float = 0.5) -> tuple[list[str], list[str]]:
    """Load one page in a new tab of ``browser``; return (problems, notes). The page counts as
    loaded once its load event has fired and the network has then been quiet for ``settle`` seconds."""
    problems: list[str] = []
    notes: list[str] = []
    tab = browser.open_tab()
    try:
        tools = _DevTools(tab["webSocketDebuggerUrl"])
        try:
            for domain in ("Page", "Network", "Runtime"):
                tools.call(f"{domain}.enable")
            url = f"{base_url}/{page}"
            tools.call("Page.navigate", url=url)
            if not tools.wait_for("Page.loadEventFired", timeout=60):
                problems.append("the page did not finish loading within 60 s")
            tools.drain(quiet_for=settle)
            images = tools.call("Runtime.evaluate", expression=IMAGES_JS, awaitPromise=True,
                                returnByValue=True)["result"].get("value", [])
            raw_tables = tools.call("Runtime.evaluate", expression=RAW_TABLES_JS,
                                    returnByValue=True)["result"].get("value", [])
            problems += [f"a Markdown table shows as text, not as a table: {text!r}..." for text in raw_tables]
            layout = tools.call("Runtime.evaluate", expression=LAYOUT_JS,
                                returnByValue=True)["result"].get("value", {})
            if build_dir is not None:
                found, said = figure_problems(layout.get("figures", []), base_url, build_dir,
                                              min_text_px, allow_unmeasured)
                problems += found
                notes += said
            for block in layout.get("wide", []):
                problems.append(f"a code block is {block['scroll']} px wide in a {block['client']} px column "
                                f"(its longest line, {block['chars']} characters: {block['longest']!r})")
            if layout.get("columnChars"):
                notes.append(f"code column {layout['columnChars']} characters")
            tools.drain(quiet_for=min(settle, 0.3), timeout=5)
            if screenshot_dir is not None:
                import base64

                shot = tools.call("Page.captureScreenshot", format="png")
                target_file = screenshot_dir / (page.replace("/", "__").replace(".html", ".png"))
                target_file.write_bytes(base64.b64decode(shot["data"]))
                notes.append(f"screenshot: {target_file}")
        finally:
            tools.close()
    finally:
        browser.close_tab(tab)

    urls: dict[str, str] = {}
    external_failures: set[str] = set()
    document_status = None
    for event in tools.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif method == "Network.responseReceived":
            status, resource = params["response"]["status"], params["response"]["url"]
            if params.get("type") == "Document" and resource.split("#")[0] == url:
                document_status = status
            # The browser asks for /favicon.ico by itself; the book declares no icon, readers see nothing.
            if resource.startswith(base_url) and status >= 400 and not resource.endswith("/favicon.ico"):
                problems.append(f"{status} for {resource[len(base_url):]}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            resource = urls.get(params["requestId"], "?")
            if resource.startswith(base_url):
                problems.append(f"failed to load {resource[len(base_url):]}: {params.get('errorText')}")
            else:
                external_failures.add(resource)
    if document_status != 200:
        problems.append(f"the page answered {document_status} (expected 200)")
    own = [img for img in images if img["src"].startswith(base_url)]
    broken = [img["src"][len(base_url):] for img in own if not img["complete"] or img["width"] == 0]
    problems += [f"image did not load: {src}" for src in broken]
    figures = [img for img in own if img.get("figure")]
    if not figures and require_figures:
        problems.append("the page's text has no image of its own (expected at least one figure)")
    notes.append(f"{len(own)} own images ({len(figures)} in the text), {len(own) - len(broken)} loaded")
    if external_failures:
        notes.append(f"{len(external_failures)} external resources not loaded (offline): "
                     + ", ".join(sorted(external_failures)[:5]))
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="*", default=DEFAULT_PAGES)
    parser.add_argument("--build-dir", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--allow-no-figures", action="store_true",
                        help="pass pages that have no image of their own (e.g. the glossary)")
    parser.add_argument("--min-text-px", type=float, default=9.0,
                        help="smallest legible figure text, in CSS pixels (default 9)")
    parser.add_argument("--allow-unmeasured", action="store_true",
                        help="pass PNG and JPEG figures that carry no text measurements (made outside the execute script)")
    parser.add_argument("--screenshots", type=Path, default=None, help="save a PNG of each page here")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds without network events after the load event that count as loaded (default 0.5; "
                             "the tests' tiny local pages need less)")
    parser.add_argument("--jobs", type=int, default=3, help="pages checked at once, each in its own browser (default 3)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.settle < 0:
        parser.error(f"--settle must be at least 0, got {args.settle}")

    chromium = find_chromium()
    if chromium is None:
        print("check_pages: Chromium not found; install it with: apt-get install -y chromium", file=sys.stderr)
        return 2
    build = args.build_dir.resolve()
    # Patterns (notebooks/*.html) stand for every page of the build that they match.
    pages = [str(found.relative_to(build)) for page in args.pages
             for found in (sorted(build.glob(page)) if "*" in page else [build / page])]
    if not pages:
        print(f"check_pages: no page of {build} matches {', '.join(args.pages)}", file=sys.stderr)
        return 1
    missing = [p for p in pages if not (build / p).is_file()]
    if missing:
        print(f"check_pages: not in {build}: {', '.join(missing)} (build the book first: "
              "bash scripts/build_book.sh)", file=sys.stderr)
        return 1
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)

    handler = functools.partial(_QuietHandler, directory=str(build))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"

    # One browser per worker thread, taken on its first page from those an earlier run left
    # running, else started; left running at the end for the next run.
    local, browsers, browsers_lock = threading.local(), [], threading.Lock()

    def browser() -> Browser:
        if not hasattr(local, "browser"):
            with browsers_lock:
                idle = IDLE_BROWSERS.pop() if IDLE_BROWSERS else None
            if idle is not None and not idle.alive():
                idle.close()  # its profile folder goes too
                idle = None
            local.browser = idle or Browser(chromium)
            with browsers_lock:
                browsers.append(local.browser)
        return local.browser

    def timed_check(page: str) -> tuple[list[str], list[str], float]:
        start = time.perf_counter()
        try:
            problems, notes = check_page(browser(), base_url, page, args.screenshots,
                                        require_figures=not args.allow_no_figures, build_dir=build,
                                        min_text_px=args.min_text_px, allow_unmeasured=args.allow_unmeasured,
                                        settle=args.settle)
        except Exception as error:  # a browser that will not start is a failure, with its reason
            problems, notes = [f"{type(error).__name__}: {error}"], []
        return problems, notes, time.perf_counter() - start

    failed = 0
    try:
        # A few pages at a time, each in a tab of its worker's browser: a page spends much of its
        # time waiting (for the page to go quiet), not computing. Reported in page order.
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for page, (problems, notes, seconds) in zip(pages, pool.map(timed_check, pages)):
                status = "ok" if not problems else "FAILED"
                print(f"{status:6} {page} ({seconds:.1f} s): " + "; ".join(notes), flush=True)
                for problem in problems:
                    print(f"         - {problem}")
                failed += bool(problems)
    finally:
        for each in browsers:
            if each.alive():
                IDLE_BROWSERS.append(each)
            else:
                each.close()
        server.shutdown()
        server.server_close()
    print(f"check_pages: {len(pages) - failed} of {len(pages)} pages passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
