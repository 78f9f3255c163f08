"""The kernels of the comparison, read from ``kernel-config/kernels.yaml``: the one list.

A kernel is a *base* (a Linux source: Debian package or tarball and its version) plus a
*variant* (a patch series on that base).  Variants say which model strategy counts the same
walks (baseline -> ``baseline``, patched -> ``pgoff``, naive -> ``naive``).  The capture writes
a run under ``<scenario>/<base>/<variant>/``; the analysis, the command line, the Makefile
(``rmapwalk kernel list``) and the tests all read the names from here.  This module only reads
the list; building is :mod:`rmapwalk.measure.kernel`.

A variant with ``capture: false`` is *build-only* (``merged-notrace``, ``baseline-notrace``:
no tracepoint, built for their struct layout, text size and the selftests).  It is in
:attr:`KernelList.variants` and :meth:`KernelList.builds`, but not in :meth:`KernelList.kernels`
(the kernels of the comparison, which the capture and the data set use) nor in :func:`variants`;
:meth:`KernelList.patches` refuses it unless asked for a build (``build=True``).

A variant with ``fragment:`` (a list of config fragments in kernel-config/, merged after
``rmapwalk.config``) is configured differently from the kernels of the comparison: the *path
variants* (``baseline-paths`` ...: swap, memory failure; measured by ``rmapwalk paths``).  The
fragments go into its cache key; :meth:`KernelList.builds` leaves such variants out unless
``with_fragments`` (so ``kernel build --kernel all``, ``kernel report`` and the selftests keep
to the kernels of the comparison).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path


from . import paths, yamlfile

KERNELS_FILE = paths.KERNEL_CONFIG / "kernels.yaml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class KernelListError(ValueError):
    """kernels.yaml is malformed, or a name is not in it; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Base:
    name: str                 # "6.12": the folder level under <scenario>/ in data/traces
    package: str              # Debian package with the source tarball
    tarball: Path
    patch_dir: Path
    series: dict[str, tuple[str, ...]]   # variant -> ordered patch files


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    strategy: str
    summary: str
    capture: bool = True        # False: build-only, never captured nor in the data set
    tracepoint: bool = True     # False: no rmap:rmap_walk tracepoint in its series
    fragments: tuple[str, ...] = ()   # extra config fragments (kernel-config/), in order


@dataclasses.dataclass(frozen=True)
class KernelList:
    default_base: str
    bases: dict[str, Base]
    variants: dict[str, Variant]
    path: Path

    def base(self, name: str | None = None) -> Base:
        name = self.default_base if name is None else name
        if name not in self.bases:
            raise KernelListError(f"{self.path}: no base {name!r}; have {', '.join(self.bases)}")
        return self.bases[name]

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            raise KernelListError(f"{self.path}: no variant {name!r}; "
                                  f"have {', '.join(self.variants)}")
        return self.variants[name]

    def patches(self, base: str, variant: str, *, build: bool = False) -> list[Path]:
        """The variant's patch files on ``base``, in order.  A build-only variant
        (``capture: false``) is refused unless ``build``: it cannot be captured."""
        b = self.base(base)
        if not self.variant(variant).capture and not build:
            raise KernelListError(f"{self.path}: variant {variant!r} is build-only "
                                  f"(capture: false, no tracepoint): it is built and measured "
                                  f"by `rmapwalk kernel report`, never captured; captured "
                                  f"variants: {', '.join(self.captured)}")
        if variant not in b.series:
            raise KernelListError(f"{self.path}: base {base!r} has no series for variant "
                                  f"{variant!r}")
        return [b.patch_dir / p for p in b.series[variant]]

    @property
    def captured(self) -> tuple[str, ...]:
        """The variants that are captured (all but the build-only ones)."""
        return tuple(v.name for v in self.variants.values() if v.capture)

    @property
    def path_variants(self) -> tuple[str, ...]:
        """The variants with config fragments of their own (the path variants), in order."""
        return tuple(v.name for v in self.variants.values() if v.fragments)

    @property
    def primary(self) -> tuple[str, ...]:
        """One captured variant per model strategy, the first listed with it, in the list's
        order: the kernels every comparison has (baseline, patched, naive); later variants of
        a strategy (merged) count the same walks and are measured where a chapter says so."""
        seen, out = set(), []
        for v in self.variants.values():
            if v.capture and not v.fragments and v.strategy not in seen:
                seen.add(v.strategy)
                out.append(v.name)
        return tuple(out)

    def variant_of(self, strategy: str) -> str:
        """The primary variant whose walks the model ``strategy`` counts."""
        for v in self.primary:
            if self.variants[v].strategy == strategy:
                return v
        raise KernelListError(f"{self.path}: no captured variant with strategy {strategy!r}")

    def kernels(self) -> list[tuple[str, str]]:
        """Every captured (base, variant) pair that has a series: the kernels of the
        comparison, which the capture and the data set use."""
        return [(b, v) for b, v in self.builds() if self.variants[v].capture]

    def builds(self, with_fragments: bool = False) -> list[tuple[str, str]]:
        """Every (base, variant) pair that has a series, build-only variants included; the
        variants with fragments of their own (the path variants) only if ``with_fragments``."""
        return [(b.name, v) for b in self.bases.values() for v in self.variants
                if v in b.series and (with_fragments or not self.variants[v].fragments)]

    def fragments(self, variant: str) -> list[Path]:
        """The variant's extra config fragments (after rmapwalk.config), in order."""
        return [self.path.parent / f for f in self.variant(variant).fragments]

    def strategy(self, variant: str) -> str:
        return self.variant(variant).strategy

    def identify(self, provenance: dict) -> tuple[str, str]:
        """(base, variant) of a kernel's provenance as a run manifest records it: newer
        manifests carry ``base`` and ``variant``; the first ones only ``name`` (the variant)
        and ``source.package`` (which names the base)."""
        variant = provenance.get("variant") or provenance.get("name") or ""
        base = provenance.get("base")
        if base is None:
            package = (provenance.get("source") or {}).get("package")
            base = next((b.name for b in self.bases.values() if b.package == package), "")
        return base, variant


def _fail(path: Path, msg: str) -> KernelListError:
    return KernelListError(f"{path}: {msg}")


def parse(path: Path) -> KernelList:
    doc = yamlfile.load(path, KernelListError)
    if not isinstance(doc, dict) or not {"variants", "bases", "default_base"} <= set(doc):
        raise _fail(path, "expected a mapping with default_base, variants and bases")
    variants = {}
    for name, v in (doc["variants"] or {}).items():
        if not NAME_RE.match(str(name)) or not isinstance(v, dict) or "strategy" not in v:
            raise _fail(path, f"variant {name!r}: expected a name and a mapping with 'strategy'")
        flags = {}
        for flag in ("capture", "tracepoint"):
            if not isinstance(v.get(flag, True), bool):
                raise _fail(path, f"variant {name!r}: {flag} must be true or false")
            flags[flag] = v.get(flag, True)
        fragments = v.get("fragment", [])
        if not isinstance(fragments, list) or not all(
                isinstance(f, str) and NAME_RE.match(f) and f.endswith(".config")
                for f in fragments):
            raise _fail(path, f"variant {name!r}: fragment must be a list of .config file "
                              f"names in {path.parent}, got {fragments!r}")
        for f in fragments:
            if not (path.parent / f).is_file():
                raise _fail(path, f"variant {name!r}: fragment {f} not found in {path.parent}")
        variants[str(name)] = Variant(str(name), str(v["strategy"]), " ".join(
            str(v.get("summary", "")).split()), **flags, fragments=tuple(fragments))
    bases = {}
    for name, b in (doc["bases"] or {}).items():
        name = str(name)
        if not NAME_RE.match(name) or not isinstance(b, dict):
            raise _fail(path, f"base {name!r}: expected a name and a mapping")
        missing = {"package", "tarball", "patches", "series"} - set(b)
        if missing:
            raise _fail(path, f"base {name!r}: missing {', '.join(sorted(missing))}")
        patch_dir = path.parent / str(b["patches"])
        series = {}
        for v, files in (b["series"] or {}).items():
            if v not in variants:
                raise _fail(path, f"base {name!r}: series for unknown variant {v!r} "
                                  f"(variants: {', '.join(variants)})")
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise _fail(path, f"base {name!r}, variant {v!r}: expected a list of patch files")
            for f in files:
                if not (patch_dir / f).is_file():
                    raise _fail(path, f"base {name!r}, variant {v!r}: patch {f} not found in "
                                      f"{patch_dir}")
            series[v] = tuple(files)
        bases[name] = Base(name, str(b["package"]), Path(str(b["tarball"])), patch_dir, series)
    default = str(doc["default_base"])
    if default not in bases:
        raise _fail(path, f"default_base {default!r} is not one of the bases "
                          f"({', '.join(bases)})")
    return KernelList(default, bases, variants, path)


@functools.lru_cache(maxsize=None)
def _load(path: str) -> KernelList:
    return parse(Path(path))


def load(path: str | Path | None = None) -> KernelList:
    """The kernel list (cached per path)."""
    return _load(str(path or KERNELS_FILE))


def variants() -> tuple[str, ...]:
    """The captured variants (build-only ones left out)."""
    return load().captured


def strategy_of() -> dict[str, str]:
    """Variant -> model strategy."""
    return {v.name: v.strategy for v in load().variants.values()}


def path_variants() -> tuple[str, ...]:
    """The path variants (``fragment:``), measured by ``rmapwalk paths``."""
    return load().path_variants


def primary() -> tuple[str, ...]:
    """One captured variant per model strategy (see :attr:`KernelList.primary`)."""
    return load().primary


def variant_of(strategy: str) -> str:
    """The primary variant whose walks the model ``strategy`` counts."""
    return load().variant_of(strategy)
