"""Job sizing from input sizes (embaug.resources): footers read without rows, requests that grow
with the corpus and stay bounded."""

from __future__ import annotations

import errno

import pandas as pd
import pytest

from embaug import resources as rs

MPNET = rs.ModelShape.from_config(
    {"num_hidden_layers": 12, "hidden_size": 768, "intermediate_size": 3072, "vocab_size": 30527,
     "max_position_embeddings": 514}
)  # fmt: skip
ARXIV = rs.CorpusSize(documents=732_723, text_bytes=732_723 * 1_000)
SMALL = rs.CorpusSize(documents=2_000, text_bytes=2_000 * 1_000)


def test_model_shape_from_config_counts_mpnet_parameters():
    assert (MPNET.layers, MPNET.dim) == (12, 768)
    assert MPNET.parameters == pytest.approx(110e6, rel=0.05)  # MPNet base: 109.5M


def test_corpus_size_reads_the_footer(tmp_path):
    path = tmp_path / "corpus.parquet"
    texts = [f"{i} " + "word " * (i % 200) for i in range(3000)]
    labels = [f"class{i % 7}" for i in range(3000)]
    pd.DataFrame({"doc_id": range(3000), "text": texts, "label": labels}).to_parquet(path)
    size = rs.corpus_size(path)
    assert size.documents == 3000
    characters = sum(map(len, texts))
    assert size.text_bytes == pytest.approx(characters, rel=0.02)  # plus a length per value, headers
    assert size.tokens(max_length=16) == 3000 * 16
    assert size.tokens(max_length=512) == pytest.approx(characters / rs.CHARS_PER_TOKEN, rel=0.02)
    assert rs.label_count(path) == 7


def test_missing_input_is_a_file_not_found_error_naming_it(tmp_path):
    """Snakemake shows <TBD> for it in a dry run and sizes the job once the file exists."""
    path = tmp_path / "later.parquet"
    with pytest.raises(FileNotFoundError) as caught:
        rs.corpus_size(path)
    assert caught.value.errno == errno.ENOENT and caught.value.filename == str(path)


def test_model_shape_of_a_folder(tmp_path):
    assert rs.model_shape(tmp_path) is None
    (tmp_path / "config.json").write_text('{"num_hidden_layers": 2, "hidden_size": 32}')
    assert (rs.model_shape(tmp_path).layers, rs.model_shape(tmp_path).dim) == (2, 32)


def test_mteb_task_size_from_shipped_statistics():
    pytest.importorskip("mteb")
    sts16 = rs.mteb_task_size("STS16")
    assert sts16.documents == 928 + 1055 and sts16.text_bytes == 154_802  # unique texts, characters
    assert rs.mteb_task_size("NoSuchTask") is None


@pytest.mark.parametrize("gpu", [True, False])
def test_arxiv_asks_for_more_than_a_small_corpus(gpu):
    pairs = [
        (rs.embed_request(c, MPNET, max_length=512, gpu=gpu) for c in (ARXIV, SMALL)),
        (rs.knn_request(c.documents, 13, 768, test_fraction=0.1, gpu=gpu) for c in (ARXIV, SMALL)),
        (rs.linear_request(c.documents, 13, 768, 180, test_fraction=0.1, max_train=100_000)
         for c in (ARXIV, SMALL)),
        (rs.tsne_request(c.documents, 768, perplexity=30, iterations=750) for c in (ARXIV, SMALL)),
        (rs.finetune_request(c, MPNET, max_length=512, batch_size=64, epochs=1, max_steps=0, gpu=gpu)
         for c in (ARXIV, SMALL)),
    ]  # fmt: skip
    for big, small in pairs:
        assert big.mem_mb > small.mem_mb and big.runtime > small.runtime
        assert big.threads >= small.threads


def test_requests_are_bounded():
    """Small jobs fit a small node; the largest stay within the caps; memory is not O(corpus float32)."""
    small = [
        rs.embed_request(SMALL, MPNET, max_length=512, gpu=True),
        rs.knn_request(SMALL.documents, 13, 768, test_fraction=0.1, gpu=True),
        rs.tsne_request(SMALL.documents, 768, perplexity=30, iterations=750),
    ]
    assert all(r.mem_mb <= 4096 and r.runtime <= 15 for r in small)
    knn = rs.knn_request(ARXIV.documents, 13, 768, test_fraction=0.1, gpu=True)
    all_layers_float32_mb = ARXIV.documents * 13 * 768 * 4 / 1e6  # 29 GB: what is never held
    assert knn.mem_mb < all_layers_float32_mb / 4 and knn.runtime <= 15  # one layer + a block
    embed = rs.embed_request(ARXIV, MPNET, max_length=512, gpu=True)
    assert embed.mem_mb < all_layers_float32_mb / 2 and 20 <= embed.runtime <= 120
    huge = rs.CorpusSize(10**9, 10**12)
    for request in (
        rs.embed_request(huge, MPNET, max_length=512, gpu=False),
        rs.knn_request(huge.documents, 13, 768, test_fraction=0.1, gpu=False),
    ):
        assert request.mem_mb <= rs.MAX_MEM_MB and request.runtime <= rs.MAX_MINUTES
        assert request.threads <= rs.MAX_THREADS


def test_retries_ask_for_more():
    first = rs.knn_request(100_000, 13, 768, test_fraction=0.1, gpu=False)
    second = rs.knn_request(100_000, 13, 768, test_fraction=0.1, gpu=False, attempt=2)
    assert second.mem_mb >= 2 * first.mem_mb - rs.MEM_STEP_MB and second.runtime >= 2 * first.runtime - 1
    assert second.threads == first.threads


def test_gpu_jobs_keep_few_threads_cpu_jobs_scale():
    assert rs.embed_request(ARXIV, MPNET, max_length=512, gpu=True).threads == rs.GPU_HOST_THREADS
    cpu = rs.knn_request(ARXIV.documents, 13, 768, test_fraction=0.1, gpu=False)
    assert cpu.threads == 16 and rs.knn_request(2_000, 13, 768, test_fraction=0.1, gpu=False).threads == 1


def test_mteb_layers_hold_one_layer_and_its_copy_whatever_the_number_of_layers():
    task = rs.CorpusSize(documents=200_000, text_bytes=200_000 * 100)
    one = rs.mteb_request(task, MPNET, max_length=512, layers=1, gpu=True)
    two, all_layers = (rs.mteb_request(task, MPNET, max_length=512, layers=n, gpu=True) for n in (2, 13))
    copy_mb = 200_000 * 768 * 4 / 1e6  # the layer read back from disk, beside mteb's
    assert all_layers.mem_mb == two.mem_mb
    assert all_layers.mem_mb - one.mem_mb == pytest.approx(copy_mb, abs=rs.MEM_STEP_MB)
    assert all_layers.runtime == one.runtime  # the same forward passes


def test_scoring_a_split_while_training_adds_time():
    """Figure 3's runs embed the evaluation corpus every eval_every batches: that is most of the work."""
    plain = rs.finetune_request(SMALL, MPNET, max_length=512, batch_size=64, epochs=1, max_steps=0, gpu=True)
    scored = rs.finetune_request(
        SMALL, MPNET, max_length=512, batch_size=64, epochs=1, max_steps=0, gpu=True,
        split_eval=ARXIV, eval_every=10,
    )  # fmt: skip
    assert scored.runtime > plain.runtime and scored.mem_mb == plain.mem_mb


def test_pretraining_memory_grows_with_every_token_not_with_the_texts():
    def request(corpora, **options):
        settings = {"max_length": 128, "windows_per_step": 64, "steps": 1000, "gpu": True, **options}
        return rs.pretrain_request(corpora, MPNET, **settings)

    small, arxiv = request([SMALL]), request([ARXIV])
    windows = 732_723 * 1_000 / rs.CHARS_PER_TOKEN * rs.WINDOW_TOKEN_BYTES  # every token, not 128 a text
    assert (arxiv.mem_mb - small.mem_mb) * 1e6 == pytest.approx(2 * windows, rel=0.01, abs=256e6)
    assert arxiv.mem_mb < 6_000  # 1.8 GB of windows; the texts are never held (read in batches)
    with_offsets = request([ARXIV], whole_word_mask=True)
    assert (with_offsets.mem_mb - arxiv.mem_mb) * 1e6 == pytest.approx(
        2 * windows * rs.OFFSET_TOKEN_BYTES / rs.WINDOW_TOKEN_BYTES, rel=0.01, abs=256e6
    )
    assert request([ARXIV], steps=2000).runtime > arxiv.runtime  # time follows the steps
