"""Docs and code stay together: SKILL.md, references/ and README.md against the real scripts.

Every script the docs name exists, every `--flag` written next to a script is in that script's
--help, every rule id is in the catalog, placeholders are one set, links resolve, SKILL.md
frontmatter follows the Agent Skills spec, JSON fields the procedure reads are real output fields.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from flagos_migrate.catalog.rules import BY_ID

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
SKILL = ROOT / "SKILL.md"
PROCEDURE = ROOT / "references" / "procedure.md"
OPS = ROOT / "references" / "operational-rules.md"
README = ROOT / "README.md"
CATALOG_MD = ROOT / "references" / "compatibility-patches.md"
DOCS = (SKILL, PROCEDURE, OPS, README)
EXAMPLES = ROOT / "examples"

ALLOWED_FRONTMATTER = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
SKILL_NAME = "model-migrate-flagos"
SUBCOMMANDS = {"migrate_model.py": ("resolve", "plan", "apply", "verify")}
FLAG = re.compile(r"^--[a-z][a-z0-9-]*")
SEPARATORS = {"&&", "||", "|", ";", ">", "2>&1", "<"}

# ---------------------------------------------------------------- markdown parsing


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def split_fences(text: str) -> tuple[list[tuple[str, str]], str]:
    """Fenced blocks as (language, body), and the text with the blocks blanked out."""
    blocks = []

    def grab(m: re.Match) -> str:
        blocks.append((m.group(1).strip(), m.group(2)))
        return "\n" * m.group(0).count("\n")

    prose = re.sub(r"^```([^\n]*)\n(.*?)^```[ \t]*$", grab, text, flags=re.S | re.M)
    return blocks, prose


def code_spans(prose: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", prose)


def code_commands(text: str) -> list[str]:
    """Every command line in fenced blocks (continuations joined) and every inline code span."""
    blocks, prose = split_fences(text)
    out = []
    for _, body in blocks:
        out.extend(line for line in body.replace("\\\n", " ").splitlines() if line.strip())
    return out + code_spans(prose)


def tokens_of(command: str) -> list[str]:
    command = re.sub(r"(^|\s)#.*$", "", command)  # shell comment
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def script_invocations(command: str) -> list[tuple[str, list[str]]]:
    """(script file name, its arguments up to the next separator or a bare `--`) per script called."""
    found = []
    tokens = tokens_of(command)
    i = 0
    while i < len(tokens):
        name = Path(tokens[i].strip("()")).name
        if (SCRIPTS / name).is_file() and name.endswith((".py", ".sh")):
            args = []
            for tok in tokens[i + 1:]:
                if tok in SEPARATORS or tok == "--" or tok.startswith((">", "2>")):
                    break
                args.append(tok)
            found.append((name, args))
            i += len(args)
        i += 1
    return found


@functools.lru_cache(maxsize=None)
def all_help() -> dict[tuple[str, str | None], str]:
    """--help of every script (and migrate_model.py subcommand), fetched in parallel once."""
    keys = [(p.name, None) for p in SCRIPTS.iterdir() if p.suffix in (".py", ".sh")]
    keys += [(s, sub) for s, subs in SUBCOMMANDS.items() for sub in subs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(keys, pool.map(lambda k: fetch_help(*k), keys)))


def help_text(script: str, sub: str | None = None) -> str:
    return all_help()[(script, sub)]


def fetch_help(script: str, sub: str | None = None) -> str:
    path = SCRIPTS / script
    cmd = [sys.executable, str(path)] if script.endswith(".py") else ["bash", str(path)]
    texts = []
    for extra in (["--help"], ["--help-all"] if script == "e2e_remote_serve.sh" else []):
        if not extra:
            continue
        argv = cmd + ([sub] if sub else []) + extra
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, f"{' '.join(argv)} failed: {out.stderr}"
        texts.append(out.stdout)
    return "\n".join(texts)


def flag_in_help(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def unknown_flags(command: str) -> list[str]:
    """`script --flag` pairs in one command whose flag the script's --help does not list."""
    bad = []
    for script, args in script_invocations(command):
        sub = next((a for a in args if a in SUBCOMMANDS.get(script, ())), None)
        text = help_text(script, sub)
        for arg in args:
            m = FLAG.match(arg)
            if m and not flag_in_help(m.group(0), text):
                bad.append(f"{script}{' ' + sub if sub else ''} {m.group(0)}")
    return bad


def table_rows(text: str) -> list[list[str]]:
    _, prose = split_fences(text)
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in prose.splitlines() if line.strip().startswith("|")]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip().lower()) if "`" in heading else heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    _, prose = split_fences(read(path))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", prose, re.M)}


def frontmatter(text: str) -> tuple[dict, str]:
    m = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    assert m, "SKILL.md must start with a --- YAML frontmatter block ---"
    return yaml.safe_load(m.group(1)), m.group(2)


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", text))


# ---------------------------------------------------------------- the checker itself


def test_flag_checker_catches_unknown_flags():
    assert unknown_flags("bash scripts/serve.sh start m 8122 --no-such-flag") == ["serve.sh --no-such-flag"]
    assert unknown_flags("python3 x/scripts/migrate_model.py verify q --dry-run") == ["migrate_model.py verify --dry-run"]
    assert unknown_flags("python3 scripts/migrate_model.py apply q --dry-run --force") == []
    # arguments after a bare `--` belong to vLLM, not to the script
    assert unknown_flags("bash scripts/serve.sh m -- --enforce-eager") == []
    assert unknown_flags("bash scripts/serve.sh stop 8122 && python3 scripts/e2e_eval.py --local-port 1") == []


def test_slug_matches_github_anchors():
    assert slug("P10 — Model and config registration in vllm_fl/__init__.py") == \
        "p10--model-and-config-registration-in-vllm_fl__init__py"
    assert slug("Debugging upstream-first") == "debugging-upstream-first"


# ---------------------------------------------------------------- scripts and flags


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_flags_next_to_scripts_are_in_their_help(doc):
    commands = code_commands(read(doc))
    checked = sum(len(args) for c in commands for _, args in script_invocations(c))
    bad = sorted({b for c in commands for b in unknown_flags(c)})
    assert not bad, f"{doc.name}: flags not in the script's --help: {bad}"
    assert checked > 0, f"{doc.name} calls no script"


def test_flag_rows_of_tables_belong_to_their_script():
    """A table row naming exactly one script: the flags in its code spans are that script's."""
    bad = []
    for doc in DOCS:
        for row in table_rows(read(doc)):
            spans = [s for cell in row for s in code_spans(cell)]
            named = {Path(t).name for s in spans for t in s.split()
                     if t.endswith((".py", ".sh")) and (SCRIPTS / Path(t).name).is_file()}
            if len(named) != 1:
                continue
            (script,) = named
            text = "\n".join(help_text(script, sub) for sub in (None, *SUBCOMMANDS.get(script, ())))
            bad += [f"{doc.name}: {script} {f}" for s in spans for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", s)
                    if not flag_in_help(f, text)]
    assert not bad


def test_sections_about_scripts_use_their_flags():
    """In a README section whose heading names scripts, every `--flag` span of a paragraph belongs
    to a script of the heading or of that paragraph."""
    _, prose = split_fences(read(README))
    bad = []
    scripts_in = lambda s: [n for n in re.findall(r"[\w.]+\.(?:py|sh)", s) if (SCRIPTS / n).is_file()]  # noqa: E731
    for section in re.split(r"^(?=#{2,4} )", prose, flags=re.M):
        heading = section.splitlines()[0] if section else ""
        if not scripts_in(heading):
            continue
        for para in re.split(r"\n\s*\n", section):
            named = set(scripts_in(heading)) | set(scripts_in(para))
            text = "\n".join(help_text(n, sub) for n in named for sub in (None, *SUBCOMMANDS.get(n, ())))
            for span in code_spans(para):
                bad += [f"{heading}: {f}" for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span)
                        if not flag_in_help(f, text)]
    assert not bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_scripts_exist(doc):
    text = read(doc)
    missing = sorted({n for n in re.findall(r"scripts/([\w.-]+\.(?:py|sh|json))\b", text) if not (SCRIPTS / n).exists()})
    assert not missing, f"{doc.name} names scripts/ files that do not exist: {missing}"
    # commands like `bash examples/run_example.sh` or `python3 scripts/x.py`
    for command in code_commands(text):
        toks = tokens_of(command)
        for runner, target in zip(toks, toks[1:]):
            if runner in ("python3", "bash") and target.endswith((".py", ".sh")) and "{{" not in target:
                p = ROOT / target if not target.startswith(("/", "~", "$")) else None
                if p is not None and "scripts/" not in target:
                    assert p.exists(), f"{doc.name}: {target}"
    # the first column of every scripts table
    for row in table_rows(text):
        if row and re.fullmatch(r"`[\w.-]+\.(py|sh|json)`", row[0]):
            assert (SCRIPTS / row[0].strip("`")).is_file(), f"{doc.name}: {row[0]}"


def test_skill_scripts_table_covers_the_design_card():
    rows = table_rows(read(SKILL))
    header = next(r for r in rows if r and r[0] == "Script")
    assert header == ["Script", "Step", "Description"]
    listed = {r[0].strip("`") for r in rows if r and r[0].startswith("`")}
    need = {"migrate_model.py", "validate_migration.py", "benchmark.sh", "serve.sh", "request.sh", "e2e_eval.py",
            "e2e_remote_serve.sh", "e2e_test_prompts.json", "e2e_config.template.json"}
    assert need <= listed, need - listed


def test_readme_shows_every_script_with_an_example():
    text = read(README)
    called = {s for c in code_commands(text) for s, _ in script_invocations(c)}
    scripts = {p.name for p in SCRIPTS.iterdir() if p.suffix in (".py", ".sh")}
    assert scripts - called <= {"remote_gt_server.py"}, f"no README example for {sorted(scripts - called)}"
    for p in SCRIPTS.iterdir():
        if p.suffix in (".py", ".sh", ".json"):
            assert p.name in text, f"README does not mention {p.name}"


def test_readme_names_every_environment_variable_of_the_scripts():
    used = set()
    for p in [*SCRIPTS.glob("*.sh"), *SCRIPTS.glob("lib/*.sh")]:
        used |= set(re.findall(r"\b(FLAGOS_[A-Z_]+)\b", read(p)))
    used |= {"MMF_INDEX_DIR", "MMF_PINNED_VENV"}
    text = read(README)
    missing = sorted(v for v in used if v not in text)
    assert not missing, f"README lacks {missing}"


# ---------------------------------------------------------------- rules and placeholders


def test_rule_ids_in_docs_exist():
    seen = set()
    for doc in DOCS:
        ids = set(re.findall(r"\bP\d+\b", read(doc)))
        unknown = sorted(ids - set(BY_ID))
        assert not unknown, f"{doc.name} mentions rules missing from rules.CATALOG: {unknown}"
        seen |= ids
    assert {"P8", "P11", "P12"} <= seen  # the manual rules the procedure must explain


def test_rule_ranges_in_docs_and_help_end_at_the_last_rule():
    """"rules P1-P21" in a doc or a --help goes stale when a rule is added; the test says where."""
    last = max(int(r[1:]) for r in BY_ID)
    texts = {doc.name: read(doc) for doc in DOCS}
    texts["validate_migration.py --help"] = help_text("validate_migration.py")
    for name, text in texts.items():
        for end in re.findall(r"\bP1\s*(?:-|\.\.|–)\s*P(\d+)\b", text):
            assert int(end) == last, f"{name} says P1-P{end}; the catalog ends at P{last}"


def test_every_left_for_you_rule_has_guidance():
    """Rules apply cannot always fix (partial/manual) each get a row in procedure step 5."""
    text = read(PROCEDURE)
    step5 = text[text.index("## Step 5"):text.index("## Step 6")]
    covered = set(re.findall(r"\[(P\d+)\]", step5))
    need = {r.id for r in BY_ID.values() if r.fix in ("partial", "manual")}
    assert need <= covered, f"no step-5 guidance for {sorted(need - covered)}"


def test_placeholders_are_one_set():
    skill, proc = placeholders(read(SKILL)), placeholders(read(PROCEDURE))
    assert skill == proc, f"only in SKILL.md: {skill - proc}; only in procedure.md: {proc - skill}"
    assert {"model_name", "model_name_lower", "MODEL_DISPLAY_NAME", "ModelClassName", "model_type",
            "ConfigClassName", "skill_root"} <= skill
    assert placeholders(read(OPS)) <= skill
    assert placeholders(read(README)) <= skill
    # both placeholder tables define every placeholder
    for doc in (SKILL, PROCEDURE):
        defined = {r[0].strip("`{}") for r in table_rows(read(doc)) if r and r[0].startswith("`{{")}
        assert defined == skill, f"{doc.name}: table defines {sorted(defined)}"


# ---------------------------------------------------------------- JSON fields named in the docs


@pytest.fixture(scope="module")
def example_outputs(tmp_path_factory):
    """Real JSON of `apply` (on a copy of the example plugin) and `validate_migration.py`."""
    plugin = tmp_path_factory.mktemp("docs") / "plugin"
    shutil.copytree(EXAMPLES / "plugin", plugin)
    apply = subprocess.run([sys.executable, str(SCRIPTS / "migrate_model.py"), "apply", "nova_lite", "--upstream",
                            str(EXAMPLES / "upstream"), "--plugin", str(plugin), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert apply.returncode in (0, 1), apply.stderr
    validate = subprocess.run([sys.executable, str(SCRIPTS / "validate_migration.py"), str(EXAMPLES / "plugin"),
                               "--all", "--json"], capture_output=True, text=True, timeout=120)
    assert validate.returncode in (0, 1), validate.stderr
    return {"apply": json.loads(apply.stdout), "validate": json.loads(validate.stdout), "plugin": plugin}


def has_path(obj, dotted: str) -> bool:
    for part in dotted.replace("[]", "").split("."):
        if isinstance(obj, list):
            obj = obj[0] if obj else {}
        if not isinstance(obj, dict) or part not in obj:
            return False
        obj = obj[part]
    return True


def test_resolved_fields_in_docs_are_real(example_outputs):
    resolved = example_outputs["apply"]["resolved"]
    named = {f for doc in (*DOCS,) for f in re.findall(r"\bresolved\.(\w+)", read(doc))}
    assert named, "docs name no resolve field"
    assert not named - set(resolved), f"not in resolve --json: {sorted(named - set(resolved))}"
    # every placeholder the tables map to a resolve field is one of them
    for row in table_rows(read(SKILL)):
        if row and row[0].startswith("`{{") and "resolved." in row[1]:
            field = re.search(r"resolved\.(\w+)", row[1]).group(1)
            assert field == row[0].strip("`{}"), row


def test_plan_fields_of_the_procedure_are_real(example_outputs):
    """The JSON-field table of step 3 and the apply fields of step 4."""
    text = read(PROCEDURE)
    step3 = text[text.index("## Step 3"):text.index("## Step 4")]
    fields = []
    for row in table_rows(step3):
        root = ""
        for span in code_spans(row[0]):
            if span.startswith("."):
                span = root + span
            root = span.split(".")[0]
            fields.append(span)
    assert len(fields) >= 8
    payload = example_outputs["apply"]
    for f in fields + ["written", "record"]:
        assert has_path(payload, f), f"procedure names {f!r}, not in apply --json"


def test_report_template_fields_are_real(example_outputs):
    text = read(PROCEDURE)
    template = text[text.index("## Final report template"):]
    refs = re.findall(r"\[(\w+(?: status)?): ([^\]]+)\]", template)
    assert len(refs) >= 10
    sources = {  # where fields that need a GPU or a server are defined
        "bench": [SCRIPTS / "benchmark.sh"],
        "verify": [SCRIPTS / "flagos_migrate" / "commands" / "migrate.py", SCRIPTS / "flagos_migrate" / "verify" / "import_probe.py",
                   SCRIPTS / "flagos_migrate" / "verify" / "runtime.py"],
        "e2e": [SCRIPTS / "e2e_eval.py", *SCRIPTS.glob("flagos_migrate/e2e/*.py")],
        "serve status": [SCRIPTS / "serve.sh"],
        "unit": [SCRIPTS / "run_plugin_tests.py", SCRIPTS / "flagos_migrate" / "commands" / "plugin_tests.py"],
        "request": [],  # the OpenAI answer itself
    }
    for src, expr in refs:
        field = re.split(r"[ ,]", expr.strip())[0]
        if src in ("apply", "validate", "resolve"):
            assert has_path(example_outputs["apply" if src == "resolve" else src], field), (src, field)
        elif sources.get(src):
            code = "\n".join(read(p) for p in sources[src])
            for part in field.replace("[]", "").split("."):
                assert re.search(rf"[\"']{part}[\"']|\b{part}\b", code), (src, field)


RUNNABLE = re.compile(r"scripts/(validate_migration\.py|benchmark\.sh|request\.sh|e2e_eval\.py|run_plugin_tests\.py"
                      r"|serve\.sh start|e2e_remote_serve\.sh start)\b")


def test_procedure_commands_run_on_the_example(example_outputs, tmp_path):
    """The procedure's commands, placeholders filled for the bundled example, run as written
    (with --dry-run where they would start vLLM or talk to a server)."""
    values = {"model_name": "nova_lite", "model_name_lower": "nova_lite", "model_type": "nova_lite",
              "skill_root": str(ROOT), "plugin_folder": str(example_outputs["plugin"]),
              "upstream_folder": str(EXAMPLES / "upstream"), "model_path": str(tmp_path / "NovaLite"),
              "pinned_python": sys.executable, "pinned": "0.13.0"}
    shutil.copy(SCRIPTS / "e2e_config.template.json", tmp_path / "e2e_config.json")
    env = {**os.environ, "FLAGOS_STATE_DIR": str(tmp_path / "state")}
    blocks = [body for lang, body in split_fences(read(PROCEDURE))[0] if lang == "bash"]
    ran = 0
    for line in (ln for b in blocks for ln in b.splitlines()):
        if not RUNNABLE.search(line):
            continue
        cmd = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], line.split(" > ")[0])
        if "validate_migration.py" not in cmd and "--dry-run" not in cmd:
            cmd += " --dry-run"
        out = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
        ran += 1
    assert ran >= 7


# ---------------------------------------------------------------- links, frontmatter, catalog


@pytest.mark.parametrize("doc", [*DOCS, CATALOG_MD], ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    _, prose = split_fences(read(doc))
    prose = re.sub(r"`[^`\n]*`", "", prose)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            bad.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(target)
    assert not bad, f"{doc.name}: broken links {bad}"


def test_skill_frontmatter_and_body():
    text = read(SKILL)
    meta, body = frontmatter(text)
    assert set(meta) <= ALLOWED_FRONTMATTER, set(meta) - ALLOWED_FRONTMATTER
    name = meta["name"]
    assert name == SKILL_NAME and name.endswith("-flagos")
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) and len(name) <= 64
    desc = meta["description"]
    assert isinstance(desc, str) and 50 < len(desc) <= 1024
    assert "Use when" in desc and re.search(r"\bDo NOT use\b", desc)
    assert len(str(meta.get("compatibility", ""))) <= 500
    assert len(text.splitlines()) < 500
    usage = "/model-migrate-flagos <model_name> [upstream_folder] [plugin_folder]"
    for needle in (usage, "$ARGUMENTS", "${CLAUDE_SKILL_DIR}", "/tmp/vllm-upstream-ref", "## Troubleshooting"):
        assert needle in body, needle
    steps = re.split(r"^### Step \d+", body, flags=re.M)[1:]
    assert len(steps) >= 3 and all("**Tell user**" in s for s in steps)
    assert 2 <= len(re.findall(r"^\*\*Example \d+", body, re.M)) <= 3


def test_install_folder_is_the_skill_name():
    """The folder the README installs into must equal the frontmatter name (the checkout's own
    directory name does not matter)."""
    folders = set(re.findall(r"\.claude/skills/([\w-]+)", read(README)))
    assert folders == {frontmatter(read(SKILL))[0]["name"]}


def test_no_doc_kills_other_peoples_gpu_processes():
    for doc in DOCS:
        assert not re.search(r"nvidia-smi[^\n]*\|\s*xargs[^\n]*kill", read(doc)), doc.name


def test_skills_ref_validate(tmp_path):
    validator = pytest.importorskip("skills_ref.validator", reason="skills-ref (pip install skills-ref, Python 3.11+)")
    folder = tmp_path / SKILL_NAME  # validate as installed: the folder carries the skill's name
    folder.symlink_to(ROOT, target_is_directory=True)
    assert validator.validate(folder) == []
    cli = shutil.which("agentskills")
    if cli:
        out = subprocess.run([cli, "validate", str(folder)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    # and it does catch a wrong name
    wrong = tmp_path / "other-name"
    wrong.symlink_to(ROOT, target_is_directory=True)
    assert validator.validate(wrong)


def test_patch_catalog_is_current():
    out = subprocess.run([sys.executable, str(SCRIPTS / "render_patch_catalog.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------- CI snippets


def test_yaml_snippets_in_readme_parse():
    blocks = [body for lang, body in split_fences(read(README))[0] if lang == "yaml"]
    assert len(blocks) >= 2
    for body in blocks:
        assert yaml.safe_load(body) is not None
    assert any("--format github" in b for b in blocks)


def test_pre_commit_hooks_point_at_an_existing_script(tmp_path):
    hooks = yaml.safe_load(read(ROOT / ".pre-commit-hooks.yaml"))
    assert isinstance(hooks, list) and hooks
    for hook in hooks:
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["id"] in read(README)
        entry = ROOT / hook["entry"].split()[0]
        assert hook["language"] == "script" and entry.is_file() and os.access(entry, os.X_OK)
        # run it the way pre-commit does: from the checked repository's root
        plugin = tmp_path / hook["id"]
        shutil.copytree(EXAMPLES / "plugin", plugin)
        out = subprocess.run([str(entry), *hook.get("args", [])], cwd=plugin, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr


def test_procedure_has_the_eleven_steps_each_with_a_progress_marker():
    text = read(PROCEDURE)
    numbers = [int(n) for n in re.findall(r"^## Step (\d+):", text, re.M)]
    assert numbers == list(range(1, 12))
    for section in re.split(r"^## Step \d+:", text, flags=re.M)[1:]:
        body = section.split("\n## ")[0]
        assert "**Tell user**" in body, body.splitlines()[0]


def test_skill_example_1_numbers_are_the_real_ones(example_outputs):
    """SKILL.md example 1 is the bundled toy model; its numbers must be what apply reports."""
    m = re.search(r"(\d+) findings the tool fixes \(([^)]*)\), (\d+) left for you", read(SKILL))
    assert m, "example 1 lost its plan line"
    claimed = {}
    for part in m.group(2).split(","):
        rule, _, times = part.strip().partition(" x")
        claimed[rule] = int(times or 1)
    payload = example_outputs["apply"]
    real = {}
    for f in payload["will_fix"]:
        real[f["rule"]] = real.get(f["rule"], 0) + 1
    assert claimed == real and int(m.group(1)) == len(payload["will_fix"])
    assert int(m.group(3)) == len(payload["left_for_you"])
    written = set(re.findall(r"vllm_fl/[\w/]+\.py", read(SKILL).split("**Example 1")[1].split("**Example 2")[0]))
    assert written == set(payload["written"])


# ---------------------------------------------------------------- the agent's path (issue 17)


def test_report_template_has_a_row_for_unreported_hand_fixes_and_no_repeated_name():
    template = read(PROCEDURE).split("## Final report template")[1]
    title = next(line for line in template.splitlines() if line.startswith("## "))
    assert "{{model_name}}" not in title and "({{" not in title  # never "qwen3_5 (qwen3_5)"
    rows = [line.split("|")[1].strip() for line in template.splitlines() if line.startswith("| ")]
    assert "5 hand fixes (reported)" in rows and "5 hand fixes (not reported by the tool)" in rows


def test_judgment_is_not_only_for_left_findings_and_parents_are_compared():
    skill = read(SKILL)
    assert not re.search(r"judgment is needed only", skill) and "You only decide" not in skill
    assert "compare each parent class" in skill and "verify --run" in skill
    step5 = " ".join(read(PROCEDURE).split("## Step 5:")[1].split("## Step 6:")[0].replace("**", "").split())
    assert "even with 0 left for you" in step5 and "before declaring this step done" in step5
    assert "hand fix the tool did not report" in step5 and "parent class compared" in step5


def test_skill_worked_example_has_two_architectures_and_a_hand_fix():
    example = read(SKILL).split("**Example 2")[1].split("**Example 3")[0]
    assert "ambiguous.ModelClassName" in example and "--arch Qwen3_5MoeForConditionalGeneration" in example
    assert "-> ask:" in example and "hand fix the tool did not report" in example
    assert "hand fixes (not reported by the tool)" in example


def test_architecture_answer_is_documented_where_the_question_is_asked():
    for doc in (SKILL, PROCEDURE, README):
        text = read(doc)
        assert "--arch NAME" in text and "--all-archs" in text, doc.name


def test_step_8_finds_the_plugins_tests_and_says_how_to_get_pytest():
    step8 = read(PROCEDURE).split("## Step 8:")[1].split("## Step 9:")[0]
    assert "tests/unit_tests/" in step8 and "run_plugin_tests.py" in step8
    assert "no unit tests" in step8 and "--pytest-path" in step8 and "pip install --target" in step8
    assert "tests/unit_tests/test_model_imports.py" not in step8  # not a path the plugin has


def test_readme_ci_shows_baseline_and_since():
    ci = read(README).split("## Validation in CI")[1].split("\n## ")[0]
    runs = [c for c in code_commands(ci) if "validate_migration.py" in c]
    assert any("--baseline" in c for c in runs) and any("--since" in c for c in runs)
    assert "--write-baseline" in ci


def test_readmes_runtime_tables_are_what_their_results_files_say():
    # Every README runtime table (the latest whole-corpus run and a recheck after it) is recomputed from the
    # per-file results it cites, with the benchmark's own counting: a re-run that changes a results file must
    # change its table too.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_runtime_corpus import LEVELS, level_counts

    results = ROOT / "benchmarks" / "results"
    tables = list(re.finditer(r"^\| files \(architectures\) at (\w+) \|.*\n\|[-|]+\|\n((?:\|.*\n)+)",
                              README.read_text(), re.M))
    assert tables, "README has no runtime table headed 'files (architectures) at <commit>'"
    for head in tables:
        code = head.group(1)
        per_file = {}
        files = sorted(results.glob(f"runtime_*_{code}_0.33.0_on_0.13.0.json"))
        assert files, code
        for path in files:  # one apply, verified in parts: each part's file names the code it ran
            data = json.loads(path.read_text())
            assert data["summary"]["code"] == code, path.name
            per_file.update(data["per_file"])
        groups = {
            '"0 left for you"': [n for n, r in per_file.items() if r.get("left") == 0],
            "fused-MoE": list(json.loads((results / "moe_corpus_0.33.0_on_0.13.0.json").read_text())["per_file"]),
            "transformers-5": list(json.loads((results / "migrate_tf5_0.33.0_on_0.13.0.json").read_text())["per_file"]),
            "whole corpus": list(per_file),
            "every file": list(per_file),
        }
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in head.group(2).splitlines()]
        assert [k for k in groups if any(k in r[0] for r in rows)][:3] == list(groups)[:3], code
        for row in rows:
            key = next(k for k in groups if k in row[0])
            names = groups[key]
            done = {n: per_file[n] for n in names if n in per_file and "outcome" in per_file[n]}
            counts = level_counts(done)
            archs = sum(len(r["architectures"]) for r in done.values())
            want = [f"{len(done)} ({archs})"] + [
                " / ".join(str(counts[lv]["architectures"][k]) for k in ("pass", "fail", "skipped")) for lv in LEVELS]
            assert row[1:] == want, (code, key)
