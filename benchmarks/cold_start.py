"""Child process of ``pslg bench``: import, open, first query; prints one JSON line.

    python -m pslg.benchmarks.cold_start MODELS IMAGE BACKEND DEVICE QUERY_JSON
"""
import json
import resource
import sys
import time


def main(models, image_path, backend, device, query):
    t0 = time.perf_counter()
    from pslg.runtime.image import load_image
    from pslg.runtime.pipeline import Pipeline
    t1 = time.perf_counter()
    pipeline = Pipeline.open(models, backend=backend, device=device)
    t2 = time.perf_counter()
    pipeline.set_image(load_image(image_path))
    pipeline.segment(**json.loads(query))
    t3 = time.perf_counter()
    pipeline.close()
    print(json.dumps({"import_ms": (t1 - t0) * 1e3, "open_ms": (t2 - t1) * 1e3, "first_query_ms": (t3 - t2) * 1e3,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
