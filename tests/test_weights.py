"""`scarnet weights`: key conversion, verified resumable downloads from a local server, cache discovery by trainers.

Everything is offline: the HTTP server binds 127.0.0.1 only and serves files made here.
"""
import hashlib
import http.server
import io
import json
import os
import re
import socket
import threading
import types

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT

from nnunetv2_scarnet.cli import main as scarnet_main
from nnunetv2_scarnet.network.encoders import SamViTEncoder, VIT_CONFIGS
from nnunetv2_scarnet.network.pretrained_weights import PretrainedWeightsError, load_encoder_weights
from nnunetv2_scarnet.weights import SOURCES, WEIGHTS_DIR_ENV, cache_path, find_encoder_weights
from nnunetv2_scarnet.weights.convert import ConversionError, transformers_sam_to_sam
from nnunetv2_scarnet.weights.download import Checksum, ChecksumError, DownloadError, download, hub_metadata
from nnunetv2_scarnet.weights.fetch import fetch
from nnunetv2_scarnet.weights.sources import HubFile, WeightSource

TINY = VIT_CONFIGS["tiny_vit_test"]
REVISION = "0123456789abcdef0123456789abcdef01234567"


def random_sam_encoder(seed=0):
    """A randomly filled tiny ImageEncoderViT (64 px) in segment-anything's layout."""
    torch.manual_seed(seed)
    enc = ImageEncoderViT(img_size=64, patch_size=16, embed_dim=TINY["embed_dim"], depth=TINY["depth"],
                          num_heads=TINY["num_heads"], out_chans=TINY["out_chans"], use_rel_pos=True,
                          window_size=TINY["window_size"], global_attn_indexes=TINY["global_attn_indexes"])
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(0, 0.05)
    return enc


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache and no encoder environment variables."""
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "cache"))
    for source in SOURCES.values():
        monkeypatch.delenv(source.env_var, raising=False)
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------------------- conversion
def test_transformers_sam_vision_model_converts_to_an_equal_segment_anything_encoder():
    transformers = pytest.importorskip("transformers")
    config = transformers.SamVisionConfig(
        hidden_size=TINY["embed_dim"], num_hidden_layers=TINY["depth"], num_attention_heads=TINY["num_heads"],
        image_size=64, patch_size=16, window_size=TINY["window_size"],
        global_attn_indexes=list(TINY["global_attn_indexes"]), output_channels=TINY["out_chans"],
        mlp_dim=4 * TINY["embed_dim"], use_rel_pos=True, use_abs_pos=True, qkv_bias=True)
    torch.manual_seed(1)
    hf = transformers.SamVisionModel(config).eval()
    with torch.no_grad():
        for p in hf.parameters():  # rel-pos and position tables start at zero: fill everything
            p.normal_(0, 0.05)
    hf_state = hf.state_dict()
    sam_state = transformers_sam_to_sam(hf_state)
    assert len(sam_state) == len(hf_state) and all(k.startswith("image_encoder.") for k in sam_state)
    sam = ImageEncoderViT(img_size=64, patch_size=16, embed_dim=TINY["embed_dim"], depth=TINY["depth"],
                          num_heads=TINY["num_heads"], out_chans=TINY["out_chans"], use_rel_pos=True,
                          window_size=TINY["window_size"], global_attn_indexes=TINY["global_attn_indexes"]).eval()
    sam.load_state_dict({k[len("image_encoder."):]: v for k, v in sam_state.items()}, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = hf(pixel_values=x).last_hidden_state
        got = sam(x)
    assert got.shape == expected.shape == (2, TINY["out_chans"], 4, 4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # a full SamModel state dict: prompt encoder, mask decoder and shared embedding are left out
    full = dict(hf_state, **{"mask_decoder.iou_token.weight": torch.zeros(1, 4),
                             "prompt_encoder.no_mask_embed.weight": torch.zeros(1, 4),
                             "shared_image_embedding.positional_embedding": torch.zeros(2, 2)})
    assert transformers_sam_to_sam(full).keys() == sam_state.keys()


def test_conversion_refuses_unknown_or_missing_vision_keys():
    with pytest.raises(ConversionError, match="vision_encoder.layers.0.attn.lora_A"):
        transformers_sam_to_sam({"vision_encoder.layers.0.attn.lora_A.weight": torch.zeros(1)})
    with pytest.raises(ConversionError, match="no transformers SAM vision-encoder tensors"):
        transformers_sam_to_sam({"image_encoder.pos_embed": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------- local server
class Server:
    """A 127.0.0.1 HTTP server: GET with Range support, optional truncated first answer, hub-like HEAD redirects."""

    def __init__(self):
        self.files = {}  # path -> bytes
        self.hub = {}  # resolve path -> (target path, etag, commit)
        self.cut_next_after = None  # bytes after which the next GET is cut off
        self.ranges = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                if self.path in server.hub:
                    target, etag, commit = server.hub[self.path]
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("X-Linked-Etag", f'"{etag}"')
                    self.send_header("X-Linked-Size", str(len(server.files[target])))
                    self.send_header("X-Repo-Commit", commit)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_error(404)

            def do_GET(self):
                path = server.hub[self.path][0] if self.path in server.hub else self.path
                if path not in server.files:
                    self.send_error(404)
                    return
                data = server.files[path]
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = int(match.group(1)) if match else 0
                server.ranges.append(self.headers.get("Range"))
                if start >= len(data) and match:
                    self.send_error(416)
                    return
                self.send_response(206 if match else 200)
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_next_after is not None:
                    body, server.cut_next_after = body[:server.cut_next_after], None
                self.wfile.write(body)
                self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(timeout=5)


def payload(n=300_000, seed=0):
    return torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8).numpy() \
        .tobytes()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_and_renames_into_place(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    dest = tmp_path / "dl" / "f.bin"
    digests = download(server.url("/f.bin"), str(dest), [Checksum("sha256", sha256(data)),
                                                         Checksum("md5", hashlib.md5(data).hexdigest()[:6], True)],
                       timeout=5, progress=False)
    assert dest.read_bytes() == data and digests["sha256"] == sha256(data)
    assert not os.path.exists(str(dest) + ".part")


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    server.cut_next_after = 100_000
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="resume"):
        download(server.url("/f.bin"), str(dest), [Checksum("sha256", sha256(data))], timeout=5, progress=False)
    part = str(dest) + ".part"
    assert os.path.getsize(part) == 100_000 and not dest.exists()
    download(server.url("/f.bin"), str(dest), [Checksum("sha256", sha256(data))], timeout=5, progress=False)
    assert server.ranges == [None, "bytes=100000-"]
    assert dest.read_bytes() == data and not os.path.exists(part)


def test_checksum_mismatch_leaves_no_file(server, tmp_path):
    server.files["/f.bin"] = payload()
    dest = tmp_path / "f.bin"
    with pytest.raises(ChecksumError, match=r"f\.bin: sha256 [0-9a-f]{64} does not match the pinned sha256 0{64}"):
        download(server.url("/f.bin"), str(dest), [Checksum("sha256", "0" * 64)], timeout=5, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ChecksumError, match="file-name md5 prefix 01ec64"):
        download(server.url("/f.bin"), str(dest), [Checksum("md5", "01ec64", True, "file-name")], timeout=5,
                 progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_one_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/sam_vit_b_01ec64.pth"
    with pytest.raises(DownloadError, match=f"cannot download {re.escape(url)}: .*download it by hand"):
        download(url, str(tmp_path / "x.pth"), timeout=5, progress=False, hint="download it by hand")
    assert list(tmp_path.iterdir()) == []


def test_hub_metadata_reads_the_lfs_sha256_and_commit_before_the_redirect(server):
    data = payload()
    server.files["/storage/blob"] = data
    server.hub["/repo/resolve/rev/model.bin"] = ("/storage/blob", sha256(data), REVISION)
    meta = hub_metadata(server.url("/repo/resolve/rev/model.bin"), timeout=5)
    assert (meta.sha256, meta.size, meta.commit) == (sha256(data), len(data), REVISION)
    with pytest.raises(DownloadError, match="HTTP 404"):
        hub_metadata(server.url("/repo/resolve/rev/missing.bin"), timeout=5)


# ---------------------------------------------------------------------------------------------- fetch + CLI
def tiny_source(server, hub=True, commit=REVISION, etag=None):
    """A catalogue entry for a tiny SAM-layout ViT published on the local server (hub-style when `hub`)."""
    encoder = random_sam_encoder()
    state = {f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 4)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    server.files["/storage/model.pth"] = data
    resolve = f"/org/repo/resolve/{REVISION}/model.pth"
    server.hub[resolve] = ("/storage/model.pth", etag or sha256(data), commit)
    source = WeightSource(
        name="tinytest", title="tiny test encoder", url=server.url(resolve if hub else "/storage/model.pth"),
        filename="model.pth", licence="Apache-2.0", licence_url="-", homepage="http://example.test", layout="sam",
        env_var="SCARNET_TINYTEST_CHECKPOINT", env_example="tiny.pth", sha256=None if hub else sha256(data),
        hub=HubFile("org/repo", REVISION, "model.pth") if hub else None, encoder="tiny_vit_test", image_size=64)
    return source, encoder, data


def test_fetch_verifies_against_the_hub_converts_and_caches(server, isolated_cache):
    source, encoder, _ = tiny_source(server)
    path = fetch(source, progress=False, timeout=5)
    assert path == cache_path(source) and os.path.dirname(path) == str(isolated_cache)
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert set(stored) == {f"image_encoder.{k}" for k in encoder.state_dict()}  # decoder tensors left out
    target = SamViTEncoder(image_size=64, **TINY)
    load_encoder_weights(target, path)
    assert torch.equal(target.vit.blocks[3].attn.rel_pos_h, encoder.blocks[3].attn.rel_pos_h)
    assert sorted(os.listdir(isolated_cache)) == ["tinytest_image_encoder.json", "tinytest_image_encoder.pth"]


def test_fetch_from_a_manual_file_into_a_fresh_cache(server, isolated_cache, tmp_path):
    source, encoder, data = tiny_source(server, hub=False)
    manual = tmp_path / "model.pth"
    manual.write_bytes(data)
    assert not isolated_cache.exists()
    path = fetch(source, file=str(manual))
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(stored["image_encoder.pos_embed"], encoder.pos_embed) and manual.read_bytes() == data
    manifest = json.load(open(os.path.splitext(path)[0] + ".json"))
    assert manifest["source_url"] == str(manual) and manifest["source_sha256"] == sha256(data)
    assert ".tmp" not in manifest["check"] and path in manifest["check"]


def test_fetch_refuses_a_file_that_differs_from_the_hub_checksum_or_revision(server, isolated_cache):
    source, _, _ = tiny_source(server, etag="f" * 64)
    with pytest.raises(ChecksumError, match="hub's"):
        fetch(source, progress=False, timeout=5)
    assert not os.path.exists(cache_path(source)) and not os.listdir(isolated_cache)
    source, _, _ = tiny_source(server, commit="f" * 40)
    with pytest.raises(DownloadError, match="not the pinned"):
        fetch(source, progress=False, timeout=5)
    assert not os.path.exists(cache_path(source))


def test_cli_fetch_path_verify_and_offline_error(server, isolated_cache, monkeypatch, capsys, tmp_path):
    source, _, data = tiny_source(server, hub=False)
    monkeypatch.setitem(SOURCES, source.name, source)
    assert scarnet_main(["weights", "path", "tinytest"]) == 2
    assert "run `scarnet weights fetch tinytest`" in capsys.readouterr().err
    assert scarnet_main(["weights", "fetch", "tinytest", "--quiet", "--timeout", "5"]) == 0
    assert scarnet_main(["weights", "path", "tinytest"]) == 0
    assert capsys.readouterr().out.strip().endswith(cache_path(source))
    assert scarnet_main(["weights", "verify", "tinytest"]) == 0
    assert "SHA-256 matches its manifest" in capsys.readouterr().out
    with open(cache_path(source), "ab") as f:  # a cached file changed after the fact
        f.write(b"x")
    assert scarnet_main(["weights", "verify", "tinytest"]) == 2
    assert "manifest's" in capsys.readouterr().err
    # offline: one line naming the URL and the manual alternative; then the manual alternative works
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    offline = WeightSource(**dict(source.__dict__, url=f"http://127.0.0.1:{port}/model.pth"))
    monkeypatch.setitem(SOURCES, source.name, offline)
    assert scarnet_main(["weights", "fetch", "tinytest", "--force", "--quiet", "--timeout", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"scarnet weights: cannot download http://127.0.0.1:{port}/model.pth")
    assert "`scarnet weights fetch tinytest --file PATH`" in err and len(err.splitlines()) == 1
    manual = tmp_path / "model.pth"
    manual.write_bytes(data)
    assert scarnet_main(["weights", "fetch", "tinytest", "--force", "--file", str(manual)]) == 0
    manual.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert scarnet_main(["weights", "fetch", "tinytest", "--force", "--file", str(manual)]) == 2
    assert "does not match the pinned sha256" in capsys.readouterr().err


def test_catalogue_pins():
    sam, medsam = SOURCES["sam"], SOURCES["medsam"]
    assert sam.url.endswith("/sam_vit_b_01ec64.pth") and sam.name_hash == ("md5", "01ec64")
    assert re.fullmatch(r"[0-9a-f]{64}", sam.sha256)
    assert re.fullmatch(r"[0-9a-f]{40}", medsam.hub.revision) and f"/resolve/{medsam.hub.revision}/" in medsam.url
    assert all(s.licence == "Apache-2.0" for s in SOURCES.values())


# ---------------------------------------------------------------------------------------------- discovery
def bare_trainer(cls, logs):
    """A trainer object with just what load_pretrained_encoder uses (no plans, no dataset)."""
    trainer = object.__new__(cls)
    trainer.network = types.SimpleNamespace(encoder=SamViTEncoder(image_size=64, **TINY))
    trainer.print_to_log_file = lambda *args, **kwargs: logs.append(" ".join(map(str, args)))
    return trainer


def save_sam_checkpoint(path, seed):
    encoder = random_sam_encoder(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}, path)
    return encoder


def test_trainer_finds_the_cached_encoder_and_the_environment_variable_wins(monkeypatch, tmp_path):
    from nnunetv2_scarnet.trainers import MEDSAM_CHECKPOINT_ENV, ScarNetTrainer

    assert SOURCES["medsam"].env_var == MEDSAM_CHECKPOINT_ENV
    logs = []
    cached = save_sam_checkpoint(cache_path("medsam"), seed=1)
    trainer = bare_trainer(ScarNetTrainer, logs)
    assert trainer.pretrained_weights_path() == cache_path("medsam")
    trainer.load_pretrained_encoder()
    assert torch.equal(trainer.network.encoder.vit.blocks[1].mlp.lin1.weight, cached.blocks[1].mlp.lin1.weight)
    assert cache_path("medsam") in logs[-1]

    from_env = save_sam_checkpoint(str(tmp_path / "mine" / "medsam_vit_b.pth"), seed=2)
    monkeypatch.setenv(MEDSAM_CHECKPOINT_ENV, str(tmp_path / "mine" / "medsam_vit_b.pth"))
    trainer = bare_trainer(ScarNetTrainer, logs)
    assert trainer.pretrained_weights_path() == str(tmp_path / "mine" / "medsam_vit_b.pth")
    trainer.load_pretrained_encoder()
    assert torch.equal(trainer.network.encoder.vit.blocks[1].mlp.lin1.weight, from_env.blocks[1].mlp.lin1.weight)


def test_missing_weights_error_names_the_fetch_command(monkeypatch):
    from nnunetv2_scarnet.trainers import ScarNetTrainer, ScarNetTrainer_frozenEncoder, ScarNetTrainer_sam

    for cls in (ScarNetTrainer, ScarNetTrainer_frozenEncoder):
        with pytest.raises(PretrainedWeightsError, match=r"scarnet weights fetch medsam.*SCARNET_MEDSAM_CHECKPOINT="
                                                         r".*ScarNetTrainerLite.*ScarNetTrainer_scratch"):
            bare_trainer(cls, []).load_pretrained_encoder()
    # the natural-image variant has its own file and variable: MedSAM's variable must not leak into it
    monkeypatch.setenv("SCARNET_MEDSAM_CHECKPOINT", "/elsewhere/medsam_vit_b.pth")
    assert find_encoder_weights("sam") is None
    with pytest.raises(PretrainedWeightsError, match=r"scarnet weights fetch sam.*SCARNET_SAM_CHECKPOINT="):
        bare_trainer(ScarNetTrainer_sam, []).load_pretrained_encoder()


def test_sam_variant_loads_from_the_cache_and_lite_hint_names_its_variable(monkeypatch, tmp_path):
    from nnunetv2_scarnet.trainers import TRAINER_NAMES, ScarNetTrainer_sam, ScarNetTrainerLite

    assert "ScarNetTrainer_sam" in TRAINER_NAMES
    cached = save_sam_checkpoint(cache_path("sam"), seed=3)
    trainer = bare_trainer(ScarNetTrainer_sam, [])
    trainer.load_pretrained_encoder()
    assert torch.equal(trainer.network.encoder.vit.pos_embed, cached.pos_embed)
    monkeypatch.setenv("SCARNET_LITEMEDSAM_CHECKPOINT", str(tmp_path / "missing_lite.pth"))
    with pytest.raises(PretrainedWeightsError, match=r"missing_lite\.pth.*SCARNET_LITEMEDSAM_CHECKPOINT="):
        bare_trainer(ScarNetTrainerLite, []).load_pretrained_encoder()


def test_manual_medsam_file_needs_a_sha256(tmp_path, capsys):
    manual = tmp_path / "pytorch_model.bin"
    manual.write_bytes(b"not checked")
    assert scarnet_main(["weights", "fetch", "medsam", "--file", str(manual)]) == 2
    err = capsys.readouterr().err
    assert "no SHA-256 is pinned for 'medsam'; pass --sha256" in err
    assert f"huggingface.co/wanglab/medsam-vit-base/blob/{SOURCES['medsam'].hub.revision}/pytorch_model.bin" in err
    assert scarnet_main(["weights", "fetch", "medsam", "--file", str(manual), "--sha256", "0" * 64]) == 2
    assert "does not match the given (--sha256) sha256" in capsys.readouterr().err
    assert not os.path.exists(cache_path("medsam"))
