"""`python -m workflows`: regenerate every committed ASL file (today, the RAW pipeline)."""

from workflows.raw_pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
