"""The cold-book profile's bookkeeping: each sampled stack goes to the right stage, and the
summary turns samples into CPU-seconds (bench/profile_book.py; `make profile`)."""

from bench.profile_book import OTHER, stage, summarize

WORKER = "process 7:\"python -m joblib...\";_call (helpers/jobs.py:115)"


def test_stage_takes_the_first_matching_stage_so_callers_win_over_callees():
    pretrain = f"{WORKER};pretrain (helpers/zoo.py:98);fit (helpers/train.py:190)"
    finetune = f"{WORKER};finetune (helpers/studies/separability.py:300);fit (helpers/train.py:190)"
    render = f"{WORKER};source_data (helpers/zoo.py:80);render (helpers/data/glyphs.py:99)"
    assert stage(pretrain) == "pre-training (zoo)"
    assert stage(finetune) == "fine-tuning"
    assert stage(render) == "rendering data"  # rendering inside pre-training is rendering
    assert stage("x;_lloyd (helpers/metrics/separability.py:230)") == "metrics"
    assert stage("x;_compute (helpers/features.py:200);forward (timm/models/resnet.py:1)") == \
        "extraction"
    assert stage("x;build (sphinx/application.py:1)") == "book build"
    assert stage("x;wait (threading.py:320)") == OTHER


def test_summarize_gives_shares_of_the_working_samples(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text(f"{WORKER};fit (helpers/train.py:190) 40\n"
                   f"{WORKER};fit (helpers/train.py:191) 20\n"
                   "x;draw (matplotlib/figure.py:3) 20\n"
                   "k;pretrain (helpers/zoo.py:1);_retrieve (joblib/parallel.py:1846) 99\n")
    assert dict(summarize(raw)) == {"fine-tuning": 0.75, "figures": 0.25}  # waits left out
