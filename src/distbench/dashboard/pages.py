"""The dashboard's pages. Each is a template whose data the browser fetches from ``/api/``,
so a page is served the same whether the database holds one run or thousands."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from distbench import __version__, cadvisor

STATIC_PATH = "/static"
PAGE_PATHS = ("/", "/runs", "/runs/{run_id}", "/compare", f"{STATIC_PATH}/plotly.min.js")

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
PLOTLY_JS = resources.files("plotly") / "package_data" / "plotly.min.js"
# The pod metrics the overview charts, by the role overview.js gives them. The page carries
# them (a JSON script element) so the JavaScript never spells cAdvisor's names itself.
OVERVIEW_METRICS = {
    "cpu": cadvisor.CPU_SECONDS,
    "memory": cadvisor.MEMORY_BYTES,
    "transmit": cadvisor.TRANSMIT_BYTES,
    "receive": cadvisor.RECEIVE_BYTES,
}


def _page(request: Request, template: str, title: str, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "version": __version__,
            "page": template.removesuffix(".html"),
            # Only the pages with charts load Plotly.js (3.5 MB) and charts.js; every page loads
            # common.js and its own script, static/<page>.js.
            "charts": template != "runs.html",
            **context,
        },
    )


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    return _page(request, "overview.html", "Overview", metric_names=OVERVIEW_METRICS)


@router.get("/runs", response_class=HTMLResponse)
def runs(request: Request) -> HTMLResponse:
    return _page(request, "runs.html", "Runs")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run(request: Request, run_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)]) -> HTMLResponse:
    return _page(request, "run.html", f"Run {run_id}", run_id=run_id)


@router.get("/compare", response_class=HTMLResponse)
def compare(request: Request) -> HTMLResponse:
    return _page(request, "compare.html", "Compare")


@router.get(f"{STATIC_PATH}/plotly.min.js")
def plotly_js() -> FileResponse:
    # Long-cached: the file changes only with the installed plotly version, which is in the ETag.
    return FileResponse(
        str(PLOTLY_JS),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
