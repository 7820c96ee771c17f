"""Bound the Java heap of the GraalVM isolate that runs Saxon inside saxonche.

saxonche (SaxonC-HE) is Saxon compiled to a GraalVM native image. Its serial garbage collector
sizes the young generation adaptively, from physical memory: in a validating worker it grew to
150 MB and more on top of ~145 MB of live compiled stylesheets (resident set 300-500 MB), and the
policy allows far more on a larger machine (eden up to a third of 80 % of RAM). SaxonC creates its
isolate without options (`graal_create_isolate(NULL, ...)`) and has no setting for them, so
facturflow creates the isolate itself, with GraalVM runtime options, and hands it to SaxonC the
way SaxonC's own `SaxonProcessor::initialize` does when it runs first (steps checked against the
machine code of saxonche 13.1 on Linux):

    jvmCreatedCPP = 1
    sxn_environ = {isolate, thread, main thread}      (a 24-byte struct, malloc'ed)
    graal_create_isolate(params, &env->isolate, &env->thread); env->main thread = env->thread
    j_setIndirectFunctionForNativeCall(env->thread, c_nativeCall)

Only `params` differs: it carries the options (version 3 of `graal_create_isolate_params_t`,
argc/argv). Anything unexpected (another platform or saxonche version, a missing symbol, an isolate
that already exists) leaves SaxonC to create its isolate as before: the options are an
optimisation, never a condition for validating.

FACTURFLOW_SAXON_OPTIONS sets the options (whitespace separated; `none` keeps SaxonC's defaults).
Only options from a known list are passed on: GraalVM ends the whole process on an unknown one.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import sys
import warnings
from pathlib import Path

ENV = "FACTURFLOW_SAXON_OPTIONS"
# A young generation of 64 MB keeps short-lived per-document objects out of the old generation
# (fewer full collections than 32 MB) and stops the adaptive policy from growing it to 150 MB+.
DEFAULT_OPTIONS: tuple[str, ...] = ("-XX:MaxNewSize=64m",)

_SIZE = r"\d+[kKmMgG]?"
_ALLOWED = re.compile(
    rf"^-(?:Xm[xn]{_SIZE}"
    rf"|XX:(?:MaxHeapSize|MaxNewSize|MinHeapSize|MaxHeapFree)={_SIZE}"
    r"|XX:(?:MaximumHeapSizePercent|MaximumYoungGenerationSizePercent)=\d{1,3}"
    r"|XX:[+-](?:PrintGC|VerboseGC|PrintGCSummary|CollectYoungGenerationSeparately"
    r"|ExitOnOutOfMemoryError))$"
)
_TESTED = ("13.1.",)  # saxonche versions whose SaxonProcessor::initialize was checked

_HE_CREATED = "_ZN14SaxonProcessor13jvmCreatedCPPE"
_HE_ENVIRON = "_ZN14SaxonProcessor11sxn_environE"
_HE_ANCHOR = "create_graalvm_isolate"  # exported, locates the library's load address
_HE_CALLBACK = "c_nativeCall"  # local symbol: read from the ELF symbol table

status = "not attempted"  # what happened, for diagnostics (benchmarks/memory.py prints it)
_keep: list[object] = []  # argv and friends must outlive the call


class _Params(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_int),
        ("reserved_address_space_size", ctypes.c_size_t),
        ("auxiliary_image_path", ctypes.c_char_p),
        ("auxiliary_image_reserved_space_size", ctypes.c_size_t),
        ("argc", ctypes.c_int),  # _reserved_1 in graal_isolate.h (version 3)
        ("argv", ctypes.POINTER(ctypes.c_char_p)),  # _reserved_2
        ("pkey", ctypes.c_int),
    ]


def options_from_env() -> tuple[str, ...]:
    """The options to pass: FACTURFLOW_SAXON_OPTIONS if set (only allowed ones), else defaults."""
    raw = os.environ.get(ENV)
    if raw is None:
        return DEFAULT_OPTIONS
    chosen: list[str] = []
    for option in raw.split():
        if option.lower() == "none":
            return ()
        if _ALLOWED.match(option):
            chosen.append(option)
        else:
            warnings.warn(f"{ENV}: ignoring unsupported option {option!r}", stacklevel=2)
    return tuple(chosen)


def _elf_symbols(path: Path, names: set[str]) -> dict[str, int]:
    """Values of the named symbols in an ELF64 little-endian file's .symtab and .dynsym."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {}
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    found: dict[str, int] = {}
    wanted = [name.encode("ascii") for name in names]
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if kind not in (2, 11) or entsize != 24:  # SHT_SYMTAB, SHT_DYNSYM (Elf64_Sym)
            continue
        # Find the names in the string table first, then only compare name offsets: a Python
        # loop decoding every symbol's name cost 25 ms at each process start.
        strtab = sections[link][4]
        strtab_end = strtab + sections[link][5]
        offsets: dict[int, str] = {}
        for name in wanted:
            # Every place the string table reads `name` (the table may share a longer
            # name's tail), so the offsets are exactly those of symbols named `name`.
            at = data.find(name + b"\0", strtab, strtab_end)
            while at != -1:
                offsets[at - strtab] = name.decode("ascii")
                at = data.find(name + b"\0", at + 1, strtab_end)
        if not offsets:
            continue
        for st_name, st_info, _other, shndx, value, _size in struct.iter_unpack(
            "<IBBHQQ", data[offset : offset + size]
        ):
            # Defined objects and functions only.
            if st_name in offsets and shndx and st_info & 0xF in (1, 2):
                found[offsets[st_name]] = value
    return found


def _libraries() -> tuple[Path, Path] | None:
    import saxonche

    folder = Path(saxonche.__file__).resolve().parent / "saxonche.libs"
    he = sorted(folder.glob("libsaxonc-he-*.so*"))
    core = sorted(folder.glob("libsaxonc-core-*.so*"))
    return (he[0], core[0]) if len(he) == 1 and len(core) == 1 else None


def _refuse(reason: str) -> str:
    global status
    status = f"SaxonC defaults ({reason})"
    return status


def bootstrap(options: tuple[str, ...] | None = None) -> str:
    """Create saxonche's isolate with `options` unless impossible; return what happened.

    Call before the first PySaxonProcessor of the process (later calls change nothing).
    """
    global status
    options = options_from_env() if options is None else options
    if not options:
        return _refuse("no options")
    if not sys.platform.startswith("linux") or struct.calcsize("P") != 8:
        return _refuse("not 64-bit Linux")
    try:
        from importlib.metadata import version

        if not version("saxonche").startswith(_TESTED):
            return _refuse(f"saxonche {version('saxonche')} not checked")
        libs = _libraries()
        if libs is None:
            return _refuse("saxonche libraries not found")
        he_path, core_path = libs
        he = ctypes.CDLL(str(he_path))  # already loaded by `import saxonche`: same handle
        core = ctypes.CDLL(str(core_path))
        created = ctypes.c_int.in_dll(he, _HE_CREATED)
        environ = ctypes.c_void_p.in_dll(he, _HE_ENVIRON)
        if created.value or environ.value:
            return _refuse("isolate already created")
        symbols = _elf_symbols(he_path, {_HE_ANCHOR, _HE_CALLBACK})
        if set(symbols) != {_HE_ANCHOR, _HE_CALLBACK}:
            return _refuse("SaxonC symbols not found")
        anchor = ctypes.cast(getattr(he, _HE_ANCHOR), ctypes.c_void_p).value or 0
        callback = anchor - symbols[_HE_ANCHOR] + symbols[_HE_CALLBACK]
        create = core.graal_create_isolate
        create.argtypes = [ctypes.POINTER(_Params), ctypes.c_void_p, ctypes.c_void_p]
        create.restype = ctypes.c_int
        register = core.j_setIndirectFunctionForNativeCall
        register.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        register.restype = None
        libc = ctypes.CDLL(None)
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.malloc.restype = ctypes.c_void_p
    except (OSError, AttributeError, ValueError, ImportError) as exc:
        return _refuse(f"{type(exc).__name__}: {exc}")

    env = libc.malloc(3 * ctypes.sizeof(ctypes.c_void_p))
    if not env:
        return _refuse("out of memory")
    slots = (ctypes.c_void_p * 3).from_address(env)
    slots[0] = slots[1] = slots[2] = None
    args = [b"facturflow", *(o.encode("ascii") for o in options)]
    argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
    params = _Params(3, 0, None, 0, len(args), argv, 0)
    _keep.extend((argv, params))
    if create(ctypes.byref(params), env, env + ctypes.sizeof(ctypes.c_void_p)) != 0:
        libc.free(ctypes.c_void_p(env))
        return _refuse("graal_create_isolate failed")
    slots[2] = slots[1]
    environ.value = env
    created.value = 1
    register(slots[1], callback)
    status = "isolate created with " + " ".join(options)
    return status
