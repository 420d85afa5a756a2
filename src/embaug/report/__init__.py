"""The paper's tables and figures, aggregated from the evaluation's score files.

* :mod:`~embaug.report.tables`: the per-model tables (CSV and Markdown), with
  :mod:`~embaug.report.grid_tables` (one column per evaluation variant),
  :mod:`~embaug.report.mteb_table` (MTEB), :mod:`~embaug.report.seeds` (over training seeds),
  :mod:`~embaug.report.sweeps` (one setting's values) and :mod:`~embaug.report.paper` (beside the
  paper's numbers);
* :mod:`~embaug.report.figures`: the figures as PNGs, each with its data in a CSV.
"""
