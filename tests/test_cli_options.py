"""Command-line options declared once, as the fields of a stage's options dataclass."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from embaug.cli import STAGES, build_parser
from embaug.cli_options import add_options, option, read_options
from embaug.stage_options import ChunkOptions, count_or_none, stage_options


def parser_of(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test", exit_on_error=False)
    add_options(parser, cls)
    return parser


def test_a_field_added_to_a_stage_options_class_is_an_option_and_reaches_the_handler():
    @stage_options
    class WithOverlap(ChunkOptions):
        overlap: int = option(1, help="sentences shared by neighbouring chunks")

    parser = parser_of(WithOverlap)
    assert re.search(r"--overlap OVERLAP +sentences shared by neighbouring chunks", parser.format_help())
    given = read_options(WithOverlap, parser.parse_args(["--corpus", "c", "--out", "o", "--overlap", "3"]))
    assert given == WithOverlap(corpus="c", out="o", overlap=3)
    assert given.sentences == 2  # the other fields' defaults are the options' defaults
    assert read_options(WithOverlap, parser.parse_args(["--corpus", "c", "--out", "o"])).overlap == 1


@stage_options
class Shapes:
    name: str
    sizes: list[int] = option(help="one or more")
    tags: list[str] | None = option(None, append=True)
    pair: tuple[str, str] | None = option(None, metavar=("A", "B"))
    cells: list[tuple[str, str]] = option(metavar=("ROW", "SCORES"))
    normalize: bool = True
    limit: int | None = option(10, parse=count_or_none)
    splits: list[str] = option(["test"], choices=["train", "test"])


def test_the_annotation_gives_the_shape_of_an_option():
    argv = ["--name", "x", "--sizes", "1", "2", "--cells", "r1", "a.csv", "--cells", "r2", "b.csv"]
    given = read_options(Shapes, parser_of(Shapes).parse_args(argv))
    assert given == Shapes(name="x", sizes=[1, 2], cells=[("r1", "a.csv"), ("r2", "b.csv")])
    assert given.tags is None and given.pair is None and given.normalize and given.limit == 10
    argv += ["--tags", "a", "--tags", "b", "--pair", "p", "q", "--no-normalize", "--limit", "none"]
    given = read_options(Shapes, parser_of(Shapes).parse_args([*argv, "--splits", "train", "test"]))
    assert given.tags == ["a", "b"] and given.pair == ("p", "q") and not given.normalize
    assert given.limit is None and given.splits == ["train", "test"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--sizes", "1", "--cells", "r", "a.csv"],  # --name is required: a field without a default
        ["--name", "x", "--sizes", "one", "--cells", "r", "a.csv"],  # list[int]
        ["--name", "x", "--sizes", "1", "--cells", "r"],  # two values per --cells
        ["--name", "x", "--sizes", "1", "--cells", "r", "a.csv", "--splits", "dev"],  # choices
    ],
)
def test_a_command_line_against_the_declaration_is_refused(argv):
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        parser_of(Shapes).parse_args(argv)


def test_a_list_default_is_not_shared_between_instances():
    first, second = Shapes(name="a", sizes=[1], cells=[]), Shapes(name="b", sizes=[1], cells=[])
    first.splits.append("train")
    assert second.splits == ["test"]


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help_listing_every_field_of_its_options(stage, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args([stage, "--help"])
    assert stopped.value.code == 0
    shown = capsys.readouterr().out
    options, _ = STAGES[stage]
    for field in dataclasses.fields(options):
        assert f"--{field.name.replace('_', '-')}" in shown
