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
