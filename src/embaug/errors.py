"""The one exception type the command line turns into a clean error message."""


class EmbaugError(Exception):
    """Bad input or configuration: the message names the file, row or config key at fault."""


def first_line(problem: object) -> str:
    """The first line of an error message (library messages can run over many lines)."""
    text = str(problem).strip()
    return text.splitlines()[0].rstrip(".") if text else "no message"


def damaged(path: object, problem: object, kind: str = "file") -> EmbaugError:
    """The one-line error for a stage's output that cannot be read, with how to rebuild it."""
    return EmbaugError(
        f"{path}: {first_line(problem)}; the {kind} is incomplete or corrupt: delete it and rebuild it "
        f"(snakemake {path} --force)"
    )


STAGE_FOLDERS = ("results", "data")
"""Where the workflow's stages write (relative to its working directory)."""


def unreadable(path: object, problem: object, kind: str = "file") -> EmbaugError:
    """:func:`damaged` for what a stage wrote (under ``results/`` or ``data/``), which Snakemake can
    rebuild; for a file or folder of the user's own (a configured model), the plain one-line error
    naming it: only the user can repair it."""
    from pathlib import Path

    made_by_a_stage = any(
        Path(path).expanduser().resolve().is_relative_to(Path(folder).resolve()) for folder in STAGE_FOLDERS
    )
    return damaged(path, problem, kind) if made_by_a_stage else EmbaugError(f"{path}: {first_line(problem)}")
