"""Child process of ``pslg bench``: one backend's frames in a fresh process; prints one JSON line.

    python -m pslg.benchmarks.frames cold|steady CONFIG_JSON

``cold``: import, open and the first query, what a drone pays at boot.
``steady``: ``runs`` frames after ``warmup`` untimed ones, each one
``set_image`` plus one ``segment`` with the text cache cleared, so every
stage runs every frame. Each child reports its own peak RSS.
"""
import json
import resource
import sys
import time


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(mode, config):
    config = json.loads(config)
    t0 = time.perf_counter()
    from pslg.runtime import RunnerOptions
    from pslg.runtime.image import load_image
    from pslg.runtime.pipeline import Pipeline
    t1 = time.perf_counter()
    image = load_image(config["image"])
    with Pipeline.open(config["models"], RunnerOptions(**config["runner"]),
                       kernel_threads=config["kernel_threads"]) as pipeline:
        t2 = time.perf_counter()
        if mode == "cold":
            pipeline.set_image(image)
            pipeline.segment(**config["query"])
            t3 = time.perf_counter()
            return {"import_ms": (t1 - t0) * 1e3, "open_ms": (t2 - t1) * 1e3, "first_query_ms": (t3 - t2) * 1e3,
                    "peak_rss_mb": _peak_rss_mb()}
        frames = []
        for i in range(config["warmup"] + config["runs"]):
            pipeline.clear_text_cache()
            t0 = time.perf_counter()
            pipeline.set_image(image)
            result = pipeline.segment(**config["query"])
            if i >= config["warmup"]:
                frames.append(dict(result.timings_ms, total=(time.perf_counter() - t0) * 1e3))
        return {"backends": pipeline.backends, "frames": frames, "peak_rss_mb": _peak_rss_mb()}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
