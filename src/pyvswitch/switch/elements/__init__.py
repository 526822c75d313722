"""The switch's elements, one per file: each is a batch-at-a-time stage with typed drop reasons (a StrEnum per
element), composed per port into a ``pipeline.chain.Chain`` by switch/plan.py."""
