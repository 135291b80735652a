"""A client's configuration file read as that client reads it, printed as JSON.

usage: parse_config.py FORMAT FILE    (FORMAT: json, jsonc, toml, yaml)

JSONC drops `//` and `/* */` comments and trailing commas first. Runs on the system Python:
tomllib is in the standard library (3.11), yaml is Debian's python3-yaml (docker-compose's).
"""

import json
import re
import sys


def strip_jsonc(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            i = text.index("*/", i + 2) + 2
        else:
            out.append(c)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


kind, path = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8-sig").read()
if kind == "json":
    doc = json.loads(text)
elif kind == "jsonc":
    doc = json.loads(strip_jsonc(text))
elif kind == "toml":
    import tomllib

    doc = tomllib.loads(text)
else:
    import yaml

    doc = yaml.safe_load(text)
print(json.dumps(doc))
