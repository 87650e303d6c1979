"""Safe extraction of release tarballs: only the named members, nothing outside, no links."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest
from _tarballs import make_tarball, unsafe_tarball

import zoo
from zoo.archive import extract_members, normalize_member_name

CKPT = b"\x01checkpoint bytes\x00" * 5000


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "sandbox" / "out"
    d.mkdir(parents=True)
    return d


def test_only_the_wanted_members_are_extracted(tmp_path, dest):
    tarball = make_tarball(
        tmp_path / "r.tar.gz",
        {
            "eval.graph": b"graph",
            "./model.ckpt.index": b"index",
            "model.ckpt.data-00000-of-00001": CKPT,
            "model.ckpt.meta": b"meta",
        },
    )
    wanted = ["model.ckpt.index", "model.ckpt.data-00000-of-00001"]
    found = extract_members(tarball.path, wanted, dest)
    assert sorted(found) == sorted(wanted)
    assert tree(dest) == sorted(wanted)
    assert (dest / "model.ckpt.data-00000-of-00001").read_bytes() == CKPT
    assert (dest / "model.ckpt.index").read_bytes() == b"index"  # "./" prefix accepted


def test_uncompressed_tarball_and_nested_member(tmp_path, dest):
    tarball = make_tarball(tmp_path / "r.tar", {"sub/dir/vgg_16.ckpt": CKPT}, gzip=False)
    found = extract_members(tarball.path, ["sub/dir/vgg_16.ckpt"], dest)
    assert found["sub/dir/vgg_16.ckpt"].read_bytes() == CKPT
    assert found["sub/dir/vgg_16.ckpt"].parent.parent.parent == dest


@pytest.mark.parametrize(
    "kind, member",
    [
        ("traversal", "../escape.txt"),
        ("nested_traversal", "dir/../../escape.txt"),
        ("absolute", "absolute_escape.txt"),
        ("symlink", "link"),
        ("wanted_symlink", "model.ckpt"),
        ("hardlink", "hard"),
        ("device", "null"),
        ("fifo", "pipe"),
    ],
)
def test_hostile_members_are_refused_and_nothing_lands_outside(tmp_path, dest, kind, member):
    tarball = unsafe_tarball(tmp_path / "evil.tar.gz", kind)
    before = tree(tmp_path)
    with pytest.raises(zoo.ArchiveError) as info:
        extract_members(tarball.path, ["model.ckpt"], dest)
    assert member in str(info.value)  # the message names the member
    assert tree(tmp_path) == before  # nothing written anywhere, in dest or outside
    assert not (tmp_path / "sandbox" / "escape.txt").exists()
    assert not (tmp_path / "absolute_escape.txt").exists()


def test_duplicate_wanted_member_is_refused(tmp_path, dest):
    path = tmp_path / "dup.tar"
    with tarfile.open(path, "w") as tar:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("model.ckpt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(zoo.ArchiveError, match="twice"):
        extract_members(path, ["model.ckpt"], dest)


def test_missing_member_lists_what_the_tarball_holds(tmp_path, dest):
    tarball = make_tarball(tmp_path / "r.tar.gz", {"other.bin": b"x", "eval.graph": b"g"})
    with pytest.raises(zoo.ArchiveError) as info:
        extract_members(tarball.path, ["vgg_16.ckpt"], dest)
    message = str(info.value)
    assert "vgg_16.ckpt" in message and "other.bin" in message and "eval.graph" in message


@pytest.mark.parametrize("cut", [0.3, 0.9, 0.999])
def test_truncated_tarball_is_an_archive_error(tmp_path, dest, cut):
    tarball = make_tarball(tmp_path / "r.tar.gz", {"vgg_16.ckpt": CKPT, "z": b"tail" * 100})
    data = tarball.path.read_bytes()
    tarball.path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(zoo.ArchiveError, match="truncated or corrupt"):
        extract_members(tarball.path, ["vgg_16.ckpt"], dest)


def test_corrupt_gzip_data_is_an_archive_error(tmp_path, dest):
    tarball = make_tarball(tmp_path / "r.tar.gz", {"vgg_16.ckpt": CKPT})
    data = bytearray(tarball.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tarball.path.write_bytes(bytes(data))
    with pytest.raises(zoo.ArchiveError, match="truncated or corrupt"):
        extract_members(tarball.path, ["vgg_16.ckpt"], dest)


def test_bad_gzip_checksum_after_the_member_is_caught(tmp_path, dest):
    """The CRC sits in the gzip trailer, after the member: the archive is read to its end."""
    tarball = make_tarball(tmp_path / "r.tar.gz", {"vgg_16.ckpt": CKPT})
    data = bytearray(tarball.path.read_bytes())
    data[-8] ^= 0x01  # first byte of the CRC32 trailer
    tarball.path.write_bytes(bytes(data))
    with pytest.raises(zoo.ArchiveError, match="truncated or corrupt"):
        extract_members(tarball.path, ["vgg_16.ckpt"], dest)


def test_not_a_tarball(tmp_path, dest):
    path = tmp_path / "r.tar.gz"
    path.write_bytes(gzip.compress(b"this is not a tar archive" * 100))
    with pytest.raises(zoo.ArchiveError):
        extract_members(path, ["vgg_16.ckpt"], dest)


@pytest.mark.parametrize(
    "name, normalized",
    [
        ("a/b.ckpt", "a/b.ckpt"),
        ("./a//b.ckpt", "a/b.ckpt"),
        ("./", ""),
        ("../a", None),
        ("a/../../b", None),
        ("/etc/passwd", None),
        ("a\\..\\b", None),
        ("C:/x", None),
    ],
)
def test_member_name_normalization(name, normalized):
    assert normalize_member_name(name) == normalized


@pytest.mark.parametrize("compressed", [True, False])
def test_digest_sees_every_byte_of_the_tarball(tmp_path, dest, compressed):
    tarball = make_tarball(
        tmp_path / "r.tar", {"a": CKPT, "vgg_16.ckpt": CKPT[::-1], "z": b"tail"}, gzip=compressed
    )
    digest = hashlib.sha256()
    extract_members(tarball.path, ["vgg_16.ckpt"], dest, digest=digest)
    assert digest.hexdigest() == tarball.sha256
    assert (dest / "vgg_16.ckpt").read_bytes() == CKPT[::-1]


# ------------------------------------------------ the release layouts of the registry

V2_WANTED = ["model.ckpt.index", "model.ckpt.data-00000-of-00001"]
MOBILENET = "mobilenet_v1_1.0_224"
MOBILENET_FILES = [f"{MOBILENET}.ckpt.index", f"{MOBILENET}.ckpt.data-00000-of-00001"]
MOBILENET_OTHERS = [
    f"{MOBILENET}.ckpt.meta",
    f"{MOBILENET}.tflite",
    f"{MOBILENET}_frozen.pb",
    f"{MOBILENET}_eval.pbtxt",
    f"{MOBILENET}_info.txt",
]


def mobilenet_bundle(path):
    """The seven files of a MobileNet v1/v2 release, at the archive root ('./' prefixed)."""
    members = {f"./{m}": b"other file" for m in MOBILENET_OTHERS}
    members[f"./{MOBILENET_FILES[0]}"] = b"index"
    members[f"./{MOBILENET_FILES[1]}"] = CKPT
    return make_tarball(path, members)


def test_a_seven_file_bundle_gives_its_checkpoint_and_skips_the_rest(tmp_path, dest, caplog):
    tarball = mobilenet_bundle(tmp_path / "r.tgz")
    with caplog.at_level("INFO", logger="zoo.archive"):
        found = extract_members(tarball.path, MOBILENET_FILES, dest, known=MOBILENET_OTHERS)
    assert found[MOBILENET_FILES[1]].read_bytes() == CKPT
    assert tree(dest) == sorted(MOBILENET_FILES)  # .meta, .tflite, .pb, ... never written
    assert caplog.text == ""  # the layout is exactly the registry's: nothing to say


def test_the_nested_mobilenet_v3_layout_takes_the_ema_checkpoint(tmp_path, dest):
    # <n>/ema/model-<step> (the averaged weights, the one to load) beside <n>/pristine/...
    n = "v3-large_224_1.0_float"
    ema = [f"{n}/ema/model-540000.index", f"{n}/ema/model-540000.data-00000-of-00001"]
    others = [
        f"{n}/ema/model-540000.meta",
        f"{n}/pristine/model.ckpt-540000.index",
        f"{n}/pristine/model.ckpt-540000.data-00000-of-00001",
        f"{n}/pristine/model.ckpt-540000.meta",
        f"{n}/{n}.pb",
        f"{n}/{n}.tflite",
    ]
    members = {m: b"pristine or graph" for m in others}
    members.update({ema[0]: b"ema index", ema[1]: CKPT})
    tarball = make_tarball(tmp_path / "v3.tgz", members)
    found = extract_members(tarball.path, ema, dest, known=others)
    assert found[ema[1]].read_bytes() == CKPT and found[ema[0]].read_bytes() == b"ema index"
    assert [p for p in tree(dest) if (dest / p).is_file()] == sorted(ema)  # no pristine files


def test_a_listed_other_file_that_is_absent_is_a_warning(tmp_path, dest, caplog):
    members = {f"./{m}": b"x" for m in MOBILENET_OTHERS[1:]}  # no .ckpt.meta
    members.update({MOBILENET_FILES[0]: b"index", MOBILENET_FILES[1]: CKPT, "README": b"r"})
    tarball = make_tarball(tmp_path / "r.tgz", members)
    with caplog.at_level("INFO", logger="zoo.archive"):
        found = extract_members(tarball.path, MOBILENET_FILES, dest, known=MOBILENET_OTHERS)
    assert sorted(found) == sorted(MOBILENET_FILES)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"lacks {MOBILENET}.ckpt.meta" in warnings[0]
    assert "also holds README" in caplog.text  # listed nowhere: only logged


def test_a_checkpoint_under_another_name_is_an_error_naming_both(tmp_path, dest):
    # the registry's old, wrong entry (model.ckpt.*) against the real MobileNet bundle: no
    # other checkpoint is ever taken in place of the expected one
    tarball = mobilenet_bundle(tmp_path / "r.tgz")
    with pytest.raises(zoo.ArchiveError) as err:
        extract_members(tarball.path, V2_WANTED, dest)
    message = str(err.value)
    assert "missing model.ckpt.data-00000-of-00001, model.ckpt.index" in message
    assert f"{MOBILENET}.ckpt ({MOBILENET}.ckpt.data-00000-of-00001, {MOBILENET}.ckpt.index)" in (
        message
    )
    assert "'checkpoint' and 'files'" in message
    assert tree(dest) == []


def test_a_v1_file_of_another_name_is_an_error(tmp_path, dest):
    tarball = make_tarball(tmp_path / "r.tar.gz", {"eval.graph": b"g", "vgg16.ckpt": CKPT})
    with pytest.raises(zoo.ArchiveError, match=r"missing vgg_16\.ckpt .*vgg16\.ckpt"):
        extract_members(tarball.path, ["vgg_16.ckpt"], dest)
    assert tree(dest) == []


@pytest.mark.parametrize(
    "members",
    [
        {"a.ckpt.index": b"i", "a.ckpt.data-00000-of-00001": CKPT},  # another prefix
        {"model.ckpt.index": b"i"},  # the index without its data file
        {
            "model.ckpt.index": b"i",
            "model.ckpt.data-00000-of-00002": CKPT,
            "model.ckpt.data-00001-of-00002": CKPT,
        },  # other shards than the registry's
        {"eval.graph": b"g"},  # no checkpoint at all
    ],
    ids=["other-prefix", "incomplete", "other-shards", "none"],
)
def test_an_unexpected_layout_is_an_error_listing_the_archive(tmp_path, dest, members):
    tarball = make_tarball(tmp_path / "r.tar.gz", members)
    with pytest.raises(zoo.ArchiveError, match=r"does not have the layout") as err:
        extract_members(tarball.path, V2_WANTED, dest)
    message = str(err.value)
    assert "expected checkpoint files: model.ckpt.data-00000-of-00001, model.ckpt.index" in message
    assert all(name in message for name in members)
    assert tree(dest) == []


def test_the_registry_names_win_over_other_checkpoints(tmp_path, dest):
    tarball = make_tarball(
        tmp_path / "r.tar.gz",
        {
            "other.ckpt.index": b"other",
            "other.ckpt.data-00000-of-00001": b"other data",
            "model.ckpt.index": b"index",
            "model.ckpt.data-00000-of-00001": CKPT,
        },
    )
    found = extract_members(tarball.path, V2_WANTED, dest)
    assert found["model.ckpt.index"].read_bytes() == b"index" and tree(dest) == sorted(V2_WANTED)
