#!/usr/bin/env python3
"""run_unit.py ROOT UNIT: runs a systemd unit's ExecStart the way systemd would, without systemd.

ROOT is a scratch root the ferry .deb was unpacked into (and ferry-aws-bootstrap configured).
The unit is read from ROOT/lib/systemd/system/UNIT; like systemd this reads its EnvironmentFile
(KEY=VALUE lines, quotes removed), copies each LoadCredential= file into a private credentials
directory, ROOT/run/credentials/UNIT (%d and $CREDENTIALS_DIRECTORY), expands ${VAR} inside a word and a bare $VAR into its
whitespace-separated words, and then execs the command. Every absolute path under /usr, /etc or
/var/lib is looked up under ROOT instead, so the binaries and files are the package's own.
"""
import os
import shlex
import shutil
import sys

PREFIXED = ("/usr/", "/etc/", "/var/lib/")


def rooted(root, path):
    return root + path if path.startswith(PREFIXED) else path


def read_unit(path):
    entries = []
    section = None
    with open(path) as f:
        lines = f.read().replace("\\\n", " ").splitlines()
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def expand(word, env):
    if word.startswith("$") and not word.startswith("${"):
        return env.get(word[1:], "").split()
    out = ""
    i = 0
    while i < len(word):
        if word.startswith("${", i):
            end = word.index("}", i)
            out += env.get(word[i + 2:end], "")
            i = end + 1
        else:
            out += word[i]
            i += 1
    return [out]


def main(root, unit):
    entries = read_unit(f"{root}/lib/systemd/system/{unit}")
    service = [(k, v) for s, k, v in entries if s == "Service"]
    env = {"PATH": "/usr/bin:/bin"}
    for key, value in service:
        if key == "EnvironmentFile":
            optional = value.startswith("-")
            path = rooted(root, value.lstrip("-"))
            if os.path.exists(path) or not optional:
                env.update(read_env(path))
    creds = f"{root}/run/credentials/{unit}"
    os.makedirs(creds, mode=0o700, exist_ok=True)
    for key, value in service:
        if key == "LoadCredential":
            name, _, source = value.partition(":")
            dest = os.path.join(creds, name)
            shutil.copyfile(rooted(root, source), dest)
            os.chmod(dest, 0o400)
        if key == "StateDirectory":
            os.makedirs(f"{root}/var/lib/{value}", exist_ok=True)
    env["CREDENTIALS_DIRECTORY"] = creds
    starts = [v for k, v in service if k == "ExecStart"]
    if len(starts) != 1:
        sys.exit(f"{unit}: {len(starts)} ExecStart lines")
    argv = []
    for word in shlex.split(starts[0].replace("%d", creds).replace("%%", "%")):
        argv.extend(rooted(root, w) for w in expand(word, env))
    print(f"run_unit: {unit}: {' '.join(shlex.quote(a) for a in argv)}", file=sys.stderr)
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: run_unit.py ROOT UNIT")
    main(sys.argv[1], sys.argv[2])
