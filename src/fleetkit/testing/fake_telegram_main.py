"""Run the fake Telegram Bot API by hand, to watch a fleet's alerts without a real bot:

    python -m fleetkit.testing.fake_telegram_main --port 8081 --token-file var/tg.token

Every message a notifier sends is printed as it arrives (a photo as its size and
caption). Type `CHAT_ID text` (e.g. `42 /status`) to send the bot a message from chat
CHAT_ID, user 1: how to try the two-way commands. Loopback only; for demos and manual tests
(docs/alerts.md), never production.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time
from pathlib import Path

from fleetkit.testing.fake_telegram import FakeTelegram


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token-file", type=Path, required=True,
                        help="where to write the fake bot's token (point token_file at it)")
    parser.add_argument("--user", default="1", help="the user id typed messages come from")
    args = parser.parse_args(argv)
    token = f"{secrets.randbelow(10**9):09d}:FAKE{secrets.token_urlsafe(24)}"
    args.token_file.parent.mkdir(parents=True, exist_ok=True)
    args.token_file.write_text(token + "\n", encoding="utf-8")
    args.token_file.chmod(0o600)
    with FakeTelegram(token, port=args.port) as fake:
        print(f"fake Telegram Bot API on {fake.url}; token in {args.token_file}", flush=True)
        threading.Thread(target=_typed, args=(fake, args.user), daemon=True).start()
        seen = 0
        try:
            while True:
                messages = fake.messages
                for message in messages[seen:]:
                    body = (f"[photo, {message.photo_size} bytes] {message.caption}"
                            if message.photo else message.text)
                    print(f"--- to chat {message.chat_id}:\n{body}", flush=True)
                seen = len(messages)
                time.sleep(0.2)
        except KeyboardInterrupt:
            return 0


def _typed(fake: FakeTelegram, user: str) -> None:
    for line in sys.stdin:
        chat, _, text = line.strip().partition(" ")
        if chat and text:
            fake.inject_message(chat, text, from_user_id=user)
            print(f">>> from chat {chat}: {text}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
