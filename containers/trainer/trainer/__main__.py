import gc
import sys

from trainer.entry import main

code = main()
# Everything is written and closed by now. Frozen objects are skipped by the interpreter's
# final collections, which otherwise walk torch's ~400k objects: 0.5-0.7 s of a small job's
# time to result (docs/benchmarks.md).
gc.freeze()
sys.exit(code)
