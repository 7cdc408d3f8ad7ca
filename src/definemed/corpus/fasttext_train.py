"""Child process of `FastTextClassifier.fit`: train, quantise and save one fastText model, print the lr used.

Run as `python -m definemed.corpus.fasttext_train '<job json>'` (see `fasttext_family._train_in_subprocess` for why a
fresh process). The job holds the training file, fastText parameters, the quantisation cutoff (null: float model)
and the output path.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    import fasttext

    from definemed.corpus.fasttext_family import _train_quantized

    job = json.loads(argv[0])
    model, lr = _train_quantized(fasttext, job["train_file"], job["params"], job["cutoff"])
    model.save_model(job["model_file"])
    print(json.dumps({"lr": lr}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
