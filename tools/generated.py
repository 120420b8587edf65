"""Files the build scripts generate: write those that changed, or (--check, as the tests run it) list them."""
import os


def sync(files, check, command):
    """``files`` maps each path to the text it should hold. Returns the stale paths; with ``check`` nothing is
    written and the stale ones are printed with the command that rewrites them."""
    stale = []
    for path, text in files.items():
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current != text:
            stale.append(path)
            if not check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    if check and stale:
        print(f"out of date (run python {command}):", *stale, sep="\n  ")
    return stale
