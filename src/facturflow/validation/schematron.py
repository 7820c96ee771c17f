"""Schematron layer: the official compiled XSLTs run in-process by saxonche.

Each stylesheet is compiled once per process from its file path (so `document()` calls for the
Factur-X code lists resolve beside it, offline) and reused. Saxon is restricted to local files,
and to no environment variables, Java properties or secondary output (see `_get_engine`).
The SVRL output becomes findings; a stylesheet that raises, or fires no rule at all (the wrong
stylesheet for the document), yields a fatal LAYER-FAILED finding instead: the layer fails closed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import re
import resource
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from lxml import etree

from ..artefacts import Artefact
from . import saxonheap
from .derive_cache import cached_derive
from .report import LAYER_FAILED, Finding, Location, Severity

SVRL = "http://purl.oclc.org/dsdl/svrl"
_FIRED_TAG = f"{{{SVRL}}}fired-rule"
_FAILED_TAG = f"{{{SVRL}}}failed-assert"
_REPORT_TAG = f"{{{SVRL}}}successful-report"
_TEXT_TAG = f"{{{SVRL}}}text"
_MAX_FINDINGS = 500
_MAX_MESSAGE = 1000
# saxonche 13 reserves about 33 GiB of address space when it starts, and aborts the whole
# process when RLIMIT_AS forbids it: refuse with a clear cause instead.
_SAXON_ADDRESS_SPACE = 36 * 1024**3

# The quick path of parse_svrl: the prefix every official skeleton binds to SVRL.
_SVRL_BYTES = re.compile(rb"""\sxmlns:svrl=["']http://purl\.oclc\.org/dsdl/svrl["']""")
_FIRED_RULE = re.compile(rb"<svrl:fired-rule[\s/>]")
_PUBLISHED_RULE = re.compile(
    r"\b((?:BR|CII|UBL|PEPPOL|FX|DE|FR)-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?:_BT-\d+)?)\b"
)
_BRACKETED = re.compile(r"\[([A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9_]+)+)\]")
_INTERNAL_ID = re.compile(r"^(FX-SCH-|noid)", re.IGNORECASE)
_TERM = re.compile(r"\b(B[TG]-\d+)(?![0-9])")
_XPATH2_STEP = re.compile(r"\*:([\w.-]+)\[namespace-uri\(\)='([^']*)'\]")
_XPATH2_ATTR = re.compile(r"@\*\[local-name\(\)='([\w.-]+)'(?: and namespace-uri\(\)='')?\]")
# SchXslt (the XRechnung and Peppol stylesheets) writes XPath 3 EQNames: /Q{uri}Name[1]/@Q{}attr.
_EQNAME_ATTR = re.compile(r"@Q\{\}([\w.-]+)")
_EQNAME_STEP = re.compile(r"Q\{([^}']*)\}([\w.-]+)")
_SEVERITY: dict[str, Severity] = {
    "fatal": "fatal",
    "error": "fatal",
    "warning": "warning",
    "warn": "warning",
    "information": "information",
    "info": "information",
}


class SaxonUnavailable(RuntimeError):
    """saxonche cannot start in this process (import failure or address-space limit)."""


@dataclass
class _Engine:
    pid: int
    processor: Any
    xslt: Any
    compiled: dict[str, Any]


_engine: _Engine | None = None
_lock = threading.RLock()


def address_space_problem() -> str | None:
    """Why Saxon cannot start here (a too-low RLIMIT_AS), or None."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft >= _SAXON_ADDRESS_SPACE:
        return None
    if hard == resource.RLIM_INFINITY or hard >= _SAXON_ADDRESS_SPACE:
        # The soft limit may be raised for this process only; do it rather than abort.
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return None
    return (
        f"the process address-space limit (RLIMIT_AS = {soft // 1024**2} MiB) is below the "
        f"{_SAXON_ADDRESS_SPACE // 1024**3} GiB saxonche reserves at start-up; raise or remove "
        "the limit (e.g. Odoo's limit_memory_hard, uwsgi's limit-as) for the validating process"
    )


def _get_engine() -> _Engine:
    global _engine
    pid = os.getpid()
    if _engine is not None and _engine.pid == pid:
        return _engine
    problem = address_space_problem()
    if problem:
        raise SaxonUnavailable(problem)
    try:
        from saxonche import PySaxonProcessor
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise SaxonUnavailable(f"saxonche cannot be imported: {exc}") from None
    # Bound Saxon's Java heap (its young generation) before SaxonC creates the isolate.
    saxonheap.bootstrap()
    processor = PySaxonProcessor(license=False)
    # Stylesheets may only read local files (their code lists); never the network.
    processor.set_configuration_property("http://saxon.sf.net/feature/allowedProtocols", "file")
    # No stylesheet (a user rule pack's above all) may reach past the document: with external
    # functions off, environment-variable() and available-environment-variables() answer
    # nothing, system-property() tells no Java property and xsl:result-document does not
    # compile. What a pack may read is checked before it is compiled (packguard.py).
    processor.set_configuration_property(
        "http://saxon.sf.net/feature/allow-external-functions", "false"
    )
    # Runtime errors reach the report through the raised exception (a LAYER-FAILED finding);
    # Saxon's own copy on stderr would only clutter the user's terminal.
    processor.set_configuration_property(
        "http://saxon.sf.net/feature/standardErrorOutputFile", os.devnull
    )
    _engine = _Engine(pid, processor, processor.new_xslt30_processor(), {})
    return _engine


def _compile(engine: _Engine, artefact: Artefact) -> Any:
    """Compile the derived form of a built-in stylesheet (see derive/), else the file itself.

    The derived text is compiled with the official file's base URI, so its document() calls
    (the Factur-X code lists) resolve beside the official file. FACTURFLOW_OFFICIAL_XSLT=1
    compiles the unmodified official files instead.
    """
    if artefact.key.startswith("sch-") and not os.environ.get("FACTURFLOW_OFFICIAL_XSLT"):
        derived = cached_derive(artefact.path)
        if derived.rewrites:
            builder = engine.processor.new_document_builder()
            builder.set_base_uri(artefact.path.resolve().as_uri())
            node = builder.parse_xml(xml_text=derived.text.decode("utf-8"))
            executable = engine.xslt.compile_stylesheet(stylesheet_node=node)
            for name, path in derived.documents:  # parsed once, reused by every transformation
                executable.set_parameter(name, engine.processor.parse_xml(xml_file_name=str(path)))
            return executable
    return engine.xslt.compile_stylesheet(stylesheet_file=str(artefact.path))


def _compiled(engine: _Engine, artefact: Artefact) -> Any:
    key = str(artefact.path)
    executable = engine.compiled.get(key)
    if executable is None:
        executable = _compile(engine, artefact)
        if executable is None:  # saxonche reports some compile failures this way
            raise RuntimeError(f"cannot compile {artefact.name}")
        engine.compiled[key] = executable
    return executable


class SaxonDocument:
    """A document parsed once by Saxon and shared by every stylesheet applied to it."""

    def __init__(self, xml: bytes) -> None:
        self._xml = xml
        self._node: Any = None
        self._pid = -1

    @property
    def size(self) -> int:
        """The document's size in bytes."""
        return len(self._xml)

    def node(self, engine: _Engine) -> Any:
        if self._node is None or self._pid != engine.pid:
            self._node = _parse_for_saxon(engine, self._xml)
            self._pid = engine.pid
        return self._node


# Saxon parses a file about 1.5 times faster than the same document handed over as a string (the
# string crosses into the isolate and is read as characters): documents from this size on go
# through a scratch file of this process's own, unnamed (no other process can open it, nothing
# is left behind even on SIGKILL) and on tmpfs where there is one.
_SCRATCH_MIN_BYTES = 16 * 1024
_scratch: tuple[int, int] | None = None  # (pid, file descriptor)
_scratch_refused: int | None = None  # pid of a process where Saxon could not read it


def _scratch_fd() -> int | None:
    global _scratch
    pid = os.getpid()
    if _scratch is not None and _scratch[0] == pid:
        return _scratch[1]
    if _scratch_refused == pid:
        return None
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc/self/fd"):
        return None
    folder = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else tempfile.gettempdir()
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
    except (OSError, AttributeError):
        try:
            fd, name = tempfile.mkstemp(dir=folder, prefix="facturflow-", suffix=".xml")
            os.unlink(name)
        except OSError:
            return None
    _scratch = (pid, fd)  # an inherited descriptor (after fork) is left to the parent
    return fd


def _refuse_scratch(fd: int) -> None:
    global _scratch, _scratch_refused
    _scratch, _scratch_refused = None, os.getpid()
    with contextlib.suppress(OSError):
        os.close(fd)


def _parse_for_saxon(engine: _Engine, xml: bytes) -> Any:
    """Saxon's tree of `xml` (UTF-8 bytes): from the scratch file when large enough."""
    fd = _scratch_fd() if len(xml) >= _SCRATCH_MIN_BYTES else None
    if fd is not None:
        refused = False
        try:
            os.ftruncate(fd, 0)
            written = 0
            view = memoryview(xml)
            while written < len(xml):
                written += os.pwrite(fd, view[written:], written)
            return engine.processor.parse_xml(xml_file_name=f"/proc/self/fd/{fd}")
        except Exception:
            # The string route below is the reference and decides; a route that failed once
            # (no room on tmpfs, /proc hidden from Saxon) is not tried again in this process,
            # so that later documents are not written and parsed twice.
            refused = True
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # give tmpfs its memory back
            if refused:
                _refuse_scratch(fd)
    return engine.processor.parse_xml(xml_text=xml.decode("utf-8"))


def layer_failed(artefact: Artefact, cause: str) -> Finding:
    """The fatal finding for a Schematron layer that could not run."""
    return Finding(
        layer="schematron",
        rule=LAYER_FAILED,
        severity="fatal",
        message=f"{artefact.name} could not run: {_cap(cause)}",
        artefact=artefact.name,
    )


_devnull_fd: int | None = None  # set in processes that silence Saxon's native stderr


def quiet_native_stderr() -> None:
    """Silence what Saxon prints on file descriptor 2 during transformations, in this process.

    Saxon reports dynamic errors ("Type error in …") on the native stderr whatever
    `standardErrorOutputFile` says; the error already reaches the report as a LAYER-FAILED
    finding. Only for worker processes: redirecting the descriptor would also hide what other
    threads of an application print meanwhile.
    """
    global _devnull_fd
    if _devnull_fd is None:
        _devnull_fd = os.open(os.devnull, os.O_WRONLY)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    if _devnull_fd is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(_devnull_fd, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Documents from this size on have their SVRL written to a scratch file and read as a stream:
# Saxon would otherwise build it as one string (hundreds of MB, and copies of it) for a large
# invoice failing on every line.
_LARGE_DOCUMENT_BYTES = 8 * 1024 * 1024


def run(
    artefact: Artefact, document: SaxonDocument, tree: etree._ElementTree
) -> tuple[list[Finding], bool]:
    """Apply one stylesheet; return its findings and whether it ran."""
    with contextlib.ExitStack() as stack:
        output: str | None = None
        if document.size >= _LARGE_DOCUMENT_BYTES:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="facturflow-svrl-"))
            output = os.path.join(folder, "svrl.xml")
        with _lock, _native_stderr_silenced():
            try:
                engine = _get_engine()
                executable = _compiled(engine, artefact)
                if output is None:
                    svrl = executable.transform_to_string(xdm_node=document.node(engine))
                else:
                    executable.transform_to_file(xdm_node=document.node(engine),
                                                 output_file=output)
            except SaxonUnavailable as exc:
                return [layer_failed(artefact, str(exc))], False
            except Exception as exc:  # saxonche raises PySaxonApiError and plain exceptions
                cause = " ".join(str(exc).split())
                return [layer_failed(artefact, f"{type(exc).__name__}: {cause}")], False
        if output is not None:
            if not os.path.isfile(output) or os.path.getsize(output) == 0:
                return [layer_failed(artefact, "the stylesheet produced no SVRL output")], False
            with open(output, "rb") as stream:
                return _parse_large_svrl(stream, artefact, tree)
    if not svrl:
        return [layer_failed(artefact, "the stylesheet produced no SVRL output")], False
    data = svrl.encode("utf-8")
    del svrl  # not held while the SVRL is read (large invoices: hundreds of MB)
    return parse_svrl(data, artefact, tree)


def parse_svrl(
    svrl: bytes, artefact: Artefact, tree: etree._ElementTree | None = None
) -> tuple[list[Finding], bool]:
    """Turn an SVRL report into findings; fail closed when no rule fired."""
    if (
        b"failed-assert" not in svrl
        and b"successful-report" not in svrl
        and _SVRL_BYTES.search(svrl) is not None
        and _FIRED_RULE.search(svrl) is not None
    ):
        # The usual answer for a valid invoice: rules fired, none failed or reported. Saxon
        # wrote it, so it is well-formed; there is nothing to build a finding from.
        return [], True
    if len(svrl) >= _STREAM_SVRL_BYTES:
        return _parse_large_svrl(io.BytesIO(svrl), artefact, tree)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        root = etree.fromstring(svrl, parser)
    except etree.XMLSyntaxError as exc:
        return [layer_failed(artefact, f"unreadable SVRL output: {exc}")], False
    if next(root.iter(_FIRED_TAG), None) is None:
        return [_fired_no_rule(artefact)], False
    findings: list[Finding] = []
    # Document order, as the SVRL lists them (iter() walks in document order).
    nodes = list(itertools.islice(root.iter(_FAILED_TAG, _REPORT_TAG), _MAX_FINDINGS + 1))
    locator = _Locator(tree)
    for node in nodes[:_MAX_FINDINGS]:
        findings.append(_finding(node, artefact, locator))
    if len(nodes) > _MAX_FINDINGS:
        more = sum(1 for _ in root.iter(_FAILED_TAG, _REPORT_TAG)) - _MAX_FINDINGS
        findings.append(_truncated(more, artefact))
    return findings, True


# SVRL from this size on is read as a stream, each element dropped once read: a large invoice
# failing on every line gives hundreds of MB of SVRL, whose whole tree would double the peak.
_STREAM_SVRL_BYTES = 4 * 1024 * 1024


def _parse_large_svrl(
    svrl: IO[bytes], artefact: Artefact, tree: etree._ElementTree | None
) -> tuple[list[Finding], bool]:
    """parse_svrl's answer, read incrementally (same findings, same order)."""
    findings: list[Finding] = []
    fired = False
    more = 0
    locator = _Locator(tree)
    try:
        for _, node in etree.iterparse(
            svrl, events=("end",), tag=(_FIRED_TAG, _FAILED_TAG, _REPORT_TAG),
            resolve_entities=False, no_network=True, huge_tree=True,
        ):
            if node.tag == _FIRED_TAG:
                fired = True
            elif len(findings) < _MAX_FINDINGS:
                findings.append(_finding(node, artefact, locator))
            else:
                more += 1
            node.clear()
            while node.getprevious() is not None:
                del node.getparent()[0]
    except etree.XMLSyntaxError as exc:
        return [layer_failed(artefact, f"unreadable SVRL output: {exc}")], False
    if not fired:
        return [_fired_no_rule(artefact)], False
    if more:
        findings.append(_truncated(more, artefact))
    return findings, True


def _fired_no_rule(artefact: Artefact) -> Finding:
    """What an SVRL without a fired rule means (parse_svrl, _parse_large_svrl)."""
    return layer_failed(
        artefact,
        "the stylesheet fired no rule on this document, so it does not apply to it "
        "(wrong syntax or vocabulary)",
    )


def _truncated(more: int, artefact: Artefact) -> Finding:
    """The finding that stands for the `more` findings past _MAX_FINDINGS."""
    return Finding(
        layer="schematron",
        rule="TRUNCATED",
        severity="information",
        message=f"{more} more findings of {artefact.name} not listed",
        artefact=artefact.name,
    )


def _finding(node: etree._Element, artefact: Artefact, locator: _Locator) -> Finding:
    text_node = node.find(_TEXT_TAG)
    text = "" if text_node is None else "".join(map(str, text_node.itertext()))
    message = " ".join(text.split())
    assert_id = node.get("id")
    rule = assert_id
    if not rule or _INTERNAL_ID.match(rule):
        bracketed = _BRACKETED.search(message)
        published = bracketed or _PUBLISHED_RULE.search(message)
        rule = published.group(1) if published else (assert_id or _unnamed_rule(node, message))
    flag = (node.get("flag") or node.get("role") or "").strip().lower()
    severity = _SEVERITY.get(flag, "fatal")
    xpath = node.get("location")
    terms = tuple(dict.fromkeys(_TERM.findall(f"{rule} {message}")))
    return Finding(
        layer="schematron",
        rule=rule,
        severity=severity,
        message=_cap(message),
        location=Location(xpath=xpath, line=locator.line(xpath)),
        assert_id=assert_id if assert_id != rule else None,
        business_terms=terms,
        artefact=artefact.name,
    )


class _Locator:
    """Source lines of SVRL locations in one document, memoised: the findings of one report
    often share a location, and always share the leading steps of their paths."""

    def __init__(self, tree: etree._ElementTree | None) -> None:
        self._tree = tree
        self._lines: dict[str, int | None] = {}
        self._elements: dict[str, etree._Element | None] = {}

    def line(self, xpath: str | None) -> int | None:
        if xpath is None:
            return None
        if xpath not in self._lines:
            self._lines[xpath] = _line_of(self._tree, xpath, self._elements)
        return self._lines[xpath]


def _unnamed_rule(node: etree._Element, message: str) -> str:
    """A stable id for an assert the stylesheet left unnamed (the Factur-X profile restrictions)."""
    if "marked as not used in the given context" in message:
        return "FX-NOT-USED"
    digest = hashlib.sha1((node.get("test") or message).encode("utf-8")).hexdigest()[:8]
    return f"ASSERT-{digest}"


def _cap(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…[truncated]"


def _line_of(
    tree: etree._ElementTree | None,
    xpath: str | None,
    walked_prefixes: dict[str, etree._Element | None] | None = None,
) -> int | None:
    """The source line of the node an SVRL location points at (XPath 2 steps made XPath 1)."""
    if tree is None or not xpath or not xpath.startswith("/"):
        return None
    walked = _walk_location(tree, xpath, walked_prefixes)
    if walked is not _NOT_WALKED:
        if isinstance(walked, etree._Element) and isinstance(walked.sourceline, int):
            return walked.sourceline
        return None
    path = _XPATH2_STEP.sub(r"*[local-name()='\1' and namespace-uri()='\2']", xpath)
    path = _XPATH2_ATTR.sub(r"@\1", path)
    path = _EQNAME_ATTR.sub(r"@\1", path)
    path = _EQNAME_STEP.sub(r"*[local-name()='\2' and namespace-uri()='\1']", path)
    try:
        found = tree.xpath(path)
    except (etree.XPathError, TypeError, ValueError):
        return None
    if isinstance(found, list) and found:
        target = found[0]
        element = (
            target
            if isinstance(target, etree._Element)
            else getattr(target, "getparent", lambda: None)()
        )
        if isinstance(element, etree._Element):
            line = element.sourceline
            return line if isinstance(line, int) else None
    return None


# The locations the Schematron skeleton writes (schematron-select-full-path):
# /*:Name[namespace-uri()='URI'][n]/... and a last @*[local-name()='a' and namespace-uri()='']
# step; walked directly, without compiling an XPath expression per finding.
_FULL_STEP = re.compile(r"/\*:([\w.-]+)\[namespace-uri\(\)='([^']*)'\]\[([1-9][0-9]*)\]")
_FULL_ATTRIBUTE = re.compile(
    r"/@(?:\*\[local-name\(\)='([\w.-]+)' and namespace-uri\(\)=''\]|([\w.-]+))$"
)
_NOT_WALKED = object()


def _walk_location(
    tree: etree._ElementTree,
    xpath: str,
    walked_prefixes: dict[str, etree._Element | None] | None = None,
) -> object:
    """The element (or attribute's element) `xpath` selects, None when it selects nothing, or
    _NOT_WALKED when the path is not of the skeleton's shape (then XPath decides).

    `walked_prefixes` memoises the element each leading run of steps selects (same tree)."""
    element: etree._Element | None = None
    at = 0
    while at < len(xpath):
        step = _FULL_STEP.match(xpath, at)
        if step is None:
            attribute = _FULL_ATTRIBUTE.match(xpath, at)
            if attribute is None or element is None:
                return _NOT_WALKED
            name = attribute[1] or attribute[2]
            return element if element.get(name) is not None else None
        prefix = xpath[: step.end()]
        if walked_prefixes is not None and prefix in walked_prefixes:
            found = walked_prefixes[prefix]
        else:
            local, uri, index = step.groups()
            tag = f"{{{uri}}}{local}"
            if element is None:
                root = tree.getroot()
                found = root if root.tag == tag and index == "1" else None
            else:
                children = element.iterchildren(tag)
                found = next(itertools.islice(children, int(index) - 1, None), None)
            if walked_prefixes is not None:
                walked_prefixes[prefix] = found
        if found is None:
            return None
        element = found
        at = step.end()
    return element
