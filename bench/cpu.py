"""Which CPU a benchmark ran on, and docs/PERF.md as one section per kind of CPU.

cpu_identity() reads /proc/cpuinfo (vendor, family, model, stepping, model name, flags) and names the
microarchitecture from a small table of (vendor, family, model) -> name; a CPU not in the table is
named "unknown microarchitecture" rather than guessed. Nothing here assumes what a CPU can do: the
peaks the report divides by are measured (bench/machine.c); the name only labels the figures.

merge_report() writes one run's report as the section of docs/PERF.md for the CPU it ran on: the
page keeps a common introduction and one section per CPU kind (marked by HTML comments holding the
key vendor-family-model), so that a run on one machine replaces that machine's figures and leaves
the others as they were. The run's own headings are demoted one level under the section heading.
"""
import os
import re

# (vendor_id, family, model) -> microarchitecture. Family/model numbers from the vendors' manuals
# (Intel SDM "CPUID signature" tables, AMD's family 19h/1Ah processor programming references).
KNOWN = {
    ("AuthenticAMD", 25, 1): "Zen 3 (Milan)",
    ("AuthenticAMD", 25, 17): "Zen 4 (Genoa)",
    ("AuthenticAMD", 25, 160): "Zen 4c (Bergamo)",
    ("AuthenticAMD", 25, 97): "Zen 4 (Raphael)",
    ("GenuineIntel", 6, 85): "Skylake-SP / Cascade Lake / Cooper Lake",
    ("GenuineIntel", 6, 106): "Ice Lake-SP",
    ("GenuineIntel", 6, 143): "Sapphire Rapids",
    ("GenuineIntel", 6, 207): "Emerald Rapids",
    ("GenuineIntel", 6, 173): "Granite Rapids",
    ("GenuineIntel", 6, 151): "Alder Lake",
    ("GenuineIntel", 6, 183): "Raptor Lake",
}
# Family 26 is all Zen 5 so far; family 25 spans Zen 3 and Zen 4, so no family-wide fallback there.
FAMILY_FALLBACK = {("AuthenticAMD", 26): "Zen 5"}


def cpu_identity(path="/proc/cpuinfo"):
    """{'vendor', 'family', 'model', 'stepping', 'name', 'uarch', 'key', 'flags', 'label'} of CPU 0."""
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                k, _, v = line.partition(":")
                fields[k.strip()] = v.strip()
    except OSError:
        pass

    def num(k):
        try:
            return int(fields.get(k, ""))
        except ValueError:
            return None

    vendor, family, model = fields.get("vendor_id", "?"), num("cpu family"), num("model")
    uarch = KNOWN.get((vendor, family, model)) or FAMILY_FALLBACK.get((vendor, family)) or "unknown microarchitecture"
    name = fields.get("model name", "?")
    flags = set(fields.get("flags", "").split())
    if uarch == "unknown microarchitecture" and vendor == "GenuineIntel" and "amx_tile" in flags:
        # a virtual machine may report a model number of its own (family 6 model 167, Rocket Lake's
        # number, on a Xeon with AMX): the tile unit is only on server cores from Sapphire Rapids on
        uarch = "unknown model with AMX: Sapphire Rapids or later"
    vec = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2")
    return {"vendor": vendor, "family": family, "model": model, "stepping": num("stepping"), "name": name,
            "uarch": uarch, "key": f"{vendor}-{family}-{model}", "flags": sorted(flags), "vector": vec,
            "label": f"{name} ({vendor}, family {family}, model {model}: {uarch}, {vec})"}


def l3_mib(text):
    """lscpu's "260 MiB (1 instance)" -> 260.0 (None when unreadable)."""
    m = re.match(r"\s*([\d.]+)\s*([KMG])i?B", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024}[m.group(2)]


BEGIN = "<!-- cpu-section: {key} -->"
END = "<!-- end cpu-section: {key} -->"
SECTION_RE = re.compile(r"<!-- cpu-section: (\S+) -->\n(.*?)<!-- end cpu-section: \1 -->\n?", re.S)


def demote(lines):
    """Headings one level down (outside code fences), so the run's sections sit under the CPU's."""
    out, fence = [], False
    for ln in lines:
        if ln.startswith("```"):
            fence = not fence
        out.append("#" + ln if not fence and ln.startswith("#") else ln)
    return out


def merge_report(path, intro, key, title, body):
    """Writes path = intro + a list of the CPU sections + every section, this run's (key) replaced
    by `## title` + body (demoted), the others kept as they are in the file."""
    sections = []  # (key, text) in file order
    try:
        with open(path) as f:
            old = f.read()
        sections = [(m.group(1), m.group(2)) for m in SECTION_RE.finditer(old)]
    except OSError:
        pass
    text = "\n".join([f"## {title}", ""] + demote(body)).rstrip("\n") + "\n"
    # a placeholder keyed by vendor-family only (a CPU kind known but never run) gives way to a run on it
    same = [k for k, _ in sections if k == key] or [k for k, _ in sections if key.startswith(k + "-")][:1]
    if same:
        sections = [(key, text) if k == same[0] else (k, t) for k, t in sections]
    else:
        sections.insert(0, (key, text))
    heads = []
    for k, t in sections:
        h = t.splitlines()[0][3:] if t.startswith("## ") else k
        anchor = re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        heads.append(f"- [{h}](#{anchor})")
    page = "\n".join(intro).rstrip("\n") + "\n\nOne section per kind of CPU measured; a run replaces the section of " \
        "the CPU it ran on and keeps the others.\n\n" + "\n".join(heads) + "\n\n"
    for k, t in sections:
        page += BEGIN.format(key=k) + "\n" + t.rstrip("\n") + "\n" + END.format(key=k) + "\n\n"
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        f.write(page.rstrip("\n") + "\n")
    os.replace(tmp, path)
