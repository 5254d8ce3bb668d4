"""Shell that creates database password files, random and never replacing one: the Compose
project's secrets.sh and the password step of the systemd install.sh."""

from __future__ import annotations

# POSIX sh only. 32 random bytes as 64 hex digits: nothing a URL, YAML or shell must quote.
# `set -C` (noclobber) makes the redirection itself refuse an existing file, so two runs at
# once, or a file created meanwhile, can never be overwritten.
PASSWORD_FUNCTIONS = (
    "new_password() {  # openssl where there is one, else the kernel's random source",
    "  if command -v openssl >/dev/null 2>&1; then openssl rand -hex 32",
    "  else od -An -N32 -tx1 /dev/urandom | tr -d ' \\n'; echo; fi",
    "}",
    "create_password_file() {  # $1: the file, created mode 0600; never replaces one",
    "  value=$(new_password)",
    '  [ ${#value} -eq 64 ] || { echo "error: no random password for $1" >&2; exit 1; }',
    "  (umask 077 && set -C && printf '%s\\n' \"$value\" > \"$1\")",
    "}",
)


def shell_words(words: tuple[str, ...], indent: str = "  ") -> list[str]:
    """`for x in` items, one per line (continued with backslashes) so diffs stay readable."""
    return [f"{indent}{word} \\" for word in words[:-1]] + [f"{indent}{words[-1]}; do"]


def compose_secrets_script(generator: str, names: tuple[str, ...]) -> str:
    """secrets.sh: creates each missing `secrets/<name>` (names are checked role names and
    db_password, safe as shell words)."""
    return "\n".join([
        "#!/bin/sh",
        f"# Creates the database password files docker-compose.yml reads, written by "
        f"`{generator}`.",
        "# Run from anywhere: sh secrets.sh. A file that is there is kept as it is: to change a",
        "# password, replace its file and `docker compose up -d` (docs/deploy.md, rotation).",
        "set -eu",
        'cd "$(dirname "$0")"',
        *PASSWORD_FUNCTIONS,
        "mkdir -p secrets",
        "chmod 700 secrets  # the files are private to this host's owner of the project ...",
        "created=0",
        "for name in \\",
        *shell_words(names),
        '  file="secrets/$name"',
        '  if [ -e "$file" ]; then continue; fi',
        '  create_password_file "$file"',
        "  # ... but readable by every user inside the containers: Compose bind-mounts a file",
        "  # secret with its owner and mode on this host (uid, gid and mode are ignored outside",
        "  # Swarm), and postgres (uid 999) and the fleet image (user fleet, uid 10001) read",
        "  # theirs as non-root users. Only the services given a secret see it at all.",
        '  chmod 644 "$file"',
        '  echo "created $file"',
        "  created=$((created + 1))",
        "done",
        'echo "secrets/: $created password files created, the others kept as they were"',
    ]) + "\n"


def install_password_files(directory: str, roles: tuple[str, ...]) -> list[str]:
    """install.sh's step (as root, `run` and DRY_RUN defined): each role's missing
    `<role>.password` in `directory`, root's only. Never replacing one makes rerunning
    install.sh safe, and lets another host's files be copied in first."""
    return [
        f"run install -d -m 0700 {directory}",
        *PASSWORD_FUNCTIONS,
        "created=0",
        "for role in \\",
        *shell_words(roles),
        f'  file="{directory}/$role.password"',
        '  if [ -e "$file" ]; then continue; fi',
        '  echo "+ create $file (a random password, mode 0600)"',
        '  [ "${DRY_RUN:-0}" = 1 ] || create_password_file "$file"',
        "  created=$((created + 1))",
        "done",
        f'echo "Database passwords: $created new in {directory} (root\'s only), the others '
        'kept as they were."',
        f'echo "Hosts sharing one PostgreSQL need the same files: copy {directory} to each '
        'before its install.sh."',
    ]
