"""Results to tables and reports; reads records, imports no framework."""

# The report formats and where each is written when no -o is given (CSV is one file per table, so a folder).
DEFAULT_OUTPUT = {"html": "results/report.html", "md": "results/report.md", "csv": "results/report-csv"}
FORMATS = tuple(DEFAULT_OUTPUT)
MISSING = "\u2014"  # what a table shows where a figure is missing (an em dash): never a number, never NaN
