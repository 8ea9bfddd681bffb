"""Rendering: snapshot of raw etcd keys → key space → BGP view → Jinja2 templates → text.

The one entry point the processing side (confd.sync / the CLI) calls:

    renderer = Renderer(template_dir)            # loads and compiles templates once
    texts = renderer.render(snapshot, node, environ, jobs)   # {job.src: text}

`snapshot` maps raw etcd keys (`/calico/resources/v3/projectcalico.org/...`,
`/calico/ipam/v2/host/<node>/...`) to their values as stored. They are decoded once, by
libcalico's codec in the typed cache (confd.inputs), and checked for BIRD by confd.birdsafe; the
cache lives between calls, so a watch loop that re-renders after each event decodes only what
changed. The view is computed once per call and shared by every job.

Output is a pure function of (templates, snapshot, node, environ): no timestamps, sorted
listings, sorted peers. Templates see StrictUndefined, so a missing field is an error rather than
an empty string; every `{{ }}` passes the BIRD safety gate in confd.functions.finalize.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from confd import bgpview, functions, keyspace
from libcalico.errors import CalicoError

PURE = True

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderJob:
    """One template resource as the renderer needs it: template file name, key prefix, keys."""

    src: str
    prefix: str
    keys: tuple[str, ...]


_COMMON = ("/bgpconfig", "/bgp/v1/host", "/bgp/v1/global")

CALICO_JOBS: tuple[RenderJob, ...] = (
    RenderJob("bird.cfg.template", "/calico/",
              (*_COMMON, "/resources/v3/projectcalico.org/bgpfilters")),
    RenderJob("bird6.cfg.template", "/calico/",
              (*_COMMON, "/resources/v3/projectcalico.org/bgpfilters")),
    RenderJob("bird_aggr.cfg.template", "/calico/",
              (*_COMMON, "/ipam/v2/host//NODENAME/ipv4/block", "/staticroutes")),
    RenderJob("bird6_aggr.cfg.template", "/calico/",
              (*_COMMON, "/ipam/v2/host//NODENAME/ipv6/block", "/staticroutesv6")),
    RenderJob("bird_ipam.cfg.template", "/calico",
              ("/bgpconfig", "/v1/ipam/v4/pool", "/bgp/v1/host", "/staticroutes",
               "/rejectcidrs")),
    RenderJob("bird6_ipam.cfg.template", "/calico",
              ("/bgpconfig", "/v1/ipam/v6/pool", "/bgp/v1/host", "/staticroutesv6",
               "/rejectcidrsv6")),
)
"""Calico's six template resources (conf.d/*.toml), for rendering without a confdir."""


class RenderError(CalicoError):
    """A template failed (syntax, undefined field, unsafe value) or data is missing."""


def make_environment(template_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        finalize=functions.finalize,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=-1,
    )
    env.filters.update(functions.FILTERS)
    env.tests["endingwith"] = lambda s, suffix: str(s).endswith(suffix)
    return env


class Renderer:
    """Compiled templates plus the decode cache. Not thread-safe: one owner thread uses it."""

    def __init__(self, template_dir: Path) -> None:
        self.template_dir = Path(template_dir)
        self.env = make_environment(self.template_dir)
        self._templates: dict[str, jinja2.Template] = {}
        self._builder = keyspace.KeySpaceBuilder()
        self.warnings: tuple[str, ...] = ()
        """Problems found in the last render's data (bad resources that were skipped)."""
        self._logged: set[str] = set()

    def template(self, src: str) -> jinja2.Template:
        tpl = self._templates.get(src)
        if tpl is None:
            try:
                tpl = self.env.get_template(src)
            except jinja2.TemplateNotFound as exc:
                raise RenderError(f"template {src} not found in {self.template_dir}") from exc
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(
                    f"template {src}: syntax error at line {exc.lineno}: {exc.message}"
                ) from exc
            self._templates[src] = tpl
            self._load_includes(src, set())
        return tpl

    def _load_includes(self, name: str, seen: set[str]) -> None:
        """Compile the templates `name` includes, imports or extends (recursively) now, so that
        a broken include is found when its template is loaded and no render compiles one."""
        seen.add(name)
        assert self.env.loader is not None
        try:
            source = self.env.loader.get_source(self.env, name)[0]
            refs = jinja2.meta.find_referenced_templates(self.env.parse(source))
            for ref in refs:
                if ref is None or ref in seen:
                    continue  # a computed name: compiled when first rendered
                self.env.get_template(ref)
                self._load_includes(ref, seen)
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"template {name}: included template {exc.name} not found in "
                              f"{self.template_dir}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {exc.name or name}: syntax error at line {exc.lineno}: "
                              f"{exc.message}") from exc

    def view(self, snapshot: Mapping[str, str], node: str,
             environ: Mapping[str, str]) -> bgpview.NodeView:
        """The key space and BGP view of `node` (what the templates receive)."""
        if not node:
            raise RenderError("no node name (NODENAME) given")
        ks = self._builder.build(snapshot, node, environ)
        try:
            view = bgpview.compute(ks, node, environ)
        except bgpview.ViewError as exc:
            raise RenderError(str(exc)) from exc
        self.warnings = ks.warnings + view.warnings
        for w in self.warnings:
            if w not in self._logged:
                log.warning("%s", w)
        self._logged = set(self.warnings)
        return view

    def render(self, snapshot: Mapping[str, str], node: str, environ: Mapping[str, str],
               jobs: Sequence[RenderJob]) -> dict[str, str]:
        view = self.view(snapshot, node, environ)
        out: dict[str, str] = {}
        for job in jobs:
            out[job.src] = self.render_job(view, environ, job)
        return out

    def render_job(self, view: bgpview.NodeView, environ: Mapping[str, str],
                   job: RenderJob) -> str:
        tpl = self.template(job.src)
        ctx = self.context(view, environ, job)
        try:
            return tpl.render(ctx)
        except functions.TemplateValueError as exc:
            raise RenderError(f"template {job.src}: {exc}") from exc
        except jinja2.TemplateError as exc:
            lineno = _template_line(exc, job.src)
            raise RenderError(f"template {job.src}{lineno}: {exc}") from exc
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            lineno = _template_line(exc, job.src)
            raise RenderError(f"template {job.src}{lineno}: {type(exc).__name__}: {exc}") from exc

    def context(self, view: bgpview.NodeView, environ: Mapping[str, str],
                job: RenderJob) -> dict[str, Any]:
        kv = functions.KeyView(view.keyspace.values, job.prefix, job.keys, view.node,
                               view.keyspace.sorted_keys)
        ctx: dict[str, Any] = {}
        ctx.update(functions.helper_functions(environ))
        ctx.update(kv.functions())
        ctx.update(view=view, v4=view.v4, v6=view.v6, node=view.node)
        return ctx


def _template_line(exc: BaseException, src: str) -> str:
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(src):
            line = f" line {tb.tb_lineno}"
        tb = tb.tb_next
    return line
