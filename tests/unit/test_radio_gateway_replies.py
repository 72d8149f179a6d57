"""Reply validation with codes per recipient: every rejection has its reason (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Settings
from engine.errors import ConfigError
from engine.models import AckKind
from engine.radio.directory import RadioEntry, StaticDirectory, mask_number, normalise_number
from engine.radio.replies import CODE_ALPHABET, parse_reply
from engine.radio.reply_check import AcceptedReply, RejectedReply, ReplyBook, ReplyRejection
from engine.radio.reply_codes import load_reply_key, reply_code, with_code

pytestmark = pytest.mark.unit

KEY = b"k" * 32
FIRE = "INC-20261129-AAK7Q2"  # incident code K7Q2
FIGHT = "INC-20261129-BBM4N8"
DIRECTORY = StaticDirectory.from_mapping(
    {"R001": "13800138001", "R002": "13800138002", "R003": "13800138003"}
)
R1, R2, R3 = "13800138001", "13800138002", "13800138003"


def code(incident: str, radio: str, stage: int = 0) -> str:
    return reply_code(KEY, incident, stage, radio)


@pytest.fixture
def book() -> ReplyBook:
    b = ReplyBook(open_for=3600, rate=5, rate_window=60)
    b.issued(code(FIRE, "R001"), FIRE, 0, "R001", at=1000.0)
    b.issued(code(FIRE, "R002"), FIRE, 0, "R002", at=1000.0)
    b.issued(code(FIGHT, "R003", 1), FIGHT, 1, "R003", at=1000.0)
    return b


def rejected(result: AcceptedReply | RejectedReply) -> ReplyRejection:
    assert isinstance(result, RejectedReply), result
    return result.reason


def test_codes_differ_per_recipient_stage_and_key() -> None:
    codes = {code(FIRE, f"R{i:03d}") for i in range(200)}
    assert len(codes) >= 195  # 31**4 = 923,521 codes: a rare collision at most
    assert all(len(c) == 4 and set(c) <= CODE_ALPHABET for c in codes)
    assert code(FIRE, "R001", 0) != code(FIRE, "R001", 1)
    assert reply_code(b"other key" * 4, FIRE, 0, "R001") != code(FIRE, "R001")
    assert code(FIRE, "R001") == code(FIRE, "R001")  # stable: a restart recomputes it
    text = "[塘厦义警]P1 火情 #K7Q2 林村 回1接警 2不能 3到场"
    mine = with_code(text, FIRE, code(FIRE, "R001"))
    assert f"#{code(FIRE, 'R001')}" in mine and "#K7Q2" not in mine
    assert with_code("no code here", FIRE, "ABCD") == "no code here"


def test_accepts_the_recipients_own_code(book: ReplyBook) -> None:
    assert book.check(R1, f"1 {code(FIRE, 'R001')}", DIRECTORY, 1010.0) == AcceptedReply(
        FIRE, "R001", AckKind.ACCEPT
    )
    own = code(FIGHT, "R003", 1).lower()
    assert book.check("+86 138-0013-8003", f"３＃{own} 到了", DIRECTORY, 1010.0) == AcceptedReply(
        FIGHT, "R003", AckKind.ON_SCENE, "到了", stage=1
    )


@pytest.mark.parametrize(
    ("sender", "text", "reason"),
    [
        ("13900000000", "1 K7Q2", ReplyRejection.UNKNOWN_NUMBER),
        (R1, "9 K7Q2", ReplyRejection.UNKNOWN_ACTION),
        (R1, "好的", ReplyRejection.NO_ACTION),
        (R1, "1", ReplyRejection.NO_CODE),
        (R1, "1 K7", ReplyRejection.BAD_CODE),
        (R1, "   ", ReplyRejection.EMPTY),
        (R1, "1 K7Q2", ReplyRejection.UNKNOWN_CODE),  # the incident's code is no reply code
    ],
)
def test_syntax_and_number_rejections(
    book: ReplyBook, sender: str, text: str, reason: ReplyRejection
) -> None:
    assert rejected(book.check(sender, text, DIRECTORY, 1010.0)) is reason


def test_another_recipients_code_is_refused(book: ReplyBook) -> None:
    result = book.check(R1, f"1 {code(FIRE, 'R002')}", DIRECTORY, 1010.0)
    assert rejected(result) is ReplyRejection.OTHER_RECIPIENT
    # and R002 can still use it
    assert isinstance(book.check(R2, f"1 {code(FIRE, 'R002')}", DIRECTORY, 1011.0), AcceptedReply)


def test_a_number_not_paged_is_refused(book: ReplyBook) -> None:
    other = StaticDirectory.from_mapping({**{"R009": "13800138009"}, "R001": R1})
    assert (
        rejected(book.check("13800138009", f"1 {code(FIRE, 'R001')}", other, 1010.0))
        is ReplyRejection.OTHER_RECIPIENT
    )
    assert rejected(book.check("13800138009", "1 ABCD", other, 1010.0)) is ReplyRejection.NOT_CALLED


def test_expired_closed_and_repeated(book: ReplyBook) -> None:
    mine = code(FIRE, "R001")
    assert rejected(book.check(R1, f"1 {mine}", DIRECTORY, 1000.0 + 3601)) is (
        ReplyRejection.EXPIRED
    )
    assert isinstance(book.check(R2, f"1 {code(FIRE, 'R002')}", DIRECTORY, 1010.0), AcceptedReply)
    assert rejected(book.check(R2, f"1 {code(FIRE, 'R002')}", DIRECTORY, 1011.0)) is (
        ReplyRejection.REPEAT
    )
    # another answer with the same code is news, not a repeat
    assert isinstance(book.check(R2, f"3 {code(FIRE, 'R002')}", DIRECTORY, 1012.0), AcceptedReply)
    book.close(FIRE, at=1020.0)
    assert book.is_closed(FIRE)
    assert rejected(book.check(R2, f"2 {code(FIRE, 'R002')}", DIRECTORY, 1021.0)) is (
        ReplyRejection.CLOSED
    )
    # a later page for a closed incident (its stand-down) does not re-open it
    book.issued(code(FIRE, "R002", 1), FIRE, 1, "R002", at=1030.0)
    assert rejected(book.check(R2, f"1 {code(FIRE, 'R002', 1)}", DIRECTORY, 1031.0)) is (
        ReplyRejection.CLOSED
    )


def test_a_number_sending_too_fast_is_throttled(book: ReplyBook) -> None:
    reasons = [book.check(R1, "1 K7", DIRECTORY, 1000.0 + i).reason for i in range(7)]  # type: ignore[union-attr]
    assert reasons == [ReplyRejection.BAD_CODE] * 5 + [ReplyRejection.THROTTLED] * 2
    # throttled even with a good code, until the window has passed
    good = f"1 {code(FIRE, 'R001')}"
    assert rejected(book.check(R1, good, DIRECTORY, 1010.0)) is ReplyRejection.THROTTLED
    assert isinstance(book.check(R1, good, DIRECTORY, 1080.0), AcceptedReply)
    # one number's flood does not throttle another
    assert isinstance(book.check(R2, f"1 {code(FIRE, 'R002')}", DIRECTORY, 1010.0), AcceptedReply)


def test_an_allow_listed_number_outside_the_directory_can_reply() -> None:
    b = ReplyBook()
    mine = code(FIRE, "sms:command-centre")
    b.issued(mine, FIRE, 0, "sms:command-centre", at=1.0, number="+8613912345678")
    assert b.check("13912345678", f"1 {mine}", DIRECTORY, 2.0) == AcceptedReply(
        FIRE, "sms:command-centre", AckKind.ACCEPT
    )


def test_reply_key_from_settings_or_a_private_file(tmp_path: Path) -> None:
    assert load_reply_key(Settings(radio_reply_key="s3cret-s3cret-s3cret")) == (
        b"s3cret-s3cret-s3cret"
    )
    with pytest.raises(ConfigError, match="16 characters"):
        load_reply_key(Settings(radio_reply_key="short"))
    settings = Settings(data_dir=tmp_path)
    first = load_reply_key(settings)
    assert len(first) == 32 and load_reply_key(settings) == first
    key_file = tmp_path / "radio-gateway" / "reply.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "s3cret" not in repr(Settings(radio_reply_key="s3cret-s3cret-s3cret"))


def test_parse_reply_is_unchanged_for_the_new_codes() -> None:
    c = code(FIRE, "R001")
    parsed = parse_reply(f"#{c} 1")
    assert not isinstance(parsed, type(None)) and getattr(parsed, "code", None) == c


def test_directory_refuses_one_number_for_two_radios() -> None:
    with pytest.raises(ValueError, match="belongs to"):
        StaticDirectory([RadioEntry("A", "13800000000"), RadioEntry("B", "+8613800000000")])
    assert normalise_number("0086 13800000000") == "13800000000"
    assert mask_number("+86 15620551530") == "*******1530"


def test_directory_from_the_registry() -> None:
    from engine.registry.registry import load_registry

    data = Path(__file__).resolve().parents[2] / "data" / "tangxia"
    registry = load_registry(data)
    directory = StaticDirectory.from_registry(registry)
    radio = next(iter(registry.radios.values()))
    entry = directory.entry(radio.id)
    assert entry is not None
    assert entry.sms_number == radio.sms_number
    assert entry.poc_id == int(radio.poc_id)
    assert directory.radio_of_number(radio.sms_number) == radio.id


def test_reply_key_from_a_mounted_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "radio_reply_key"
    secret.write_text("from-a-mounted-secret-file\n")
    assert load_reply_key(Settings(radio_reply_key_file=secret)) == b"from-a-mounted-secret-file"
    secret.write_text("short")
    with pytest.raises(ConfigError, match="at least 16"):
        load_reply_key(Settings(radio_reply_key_file=secret))
    with pytest.raises(ConfigError, match="cannot read"):
        load_reply_key(Settings(radio_reply_key_file=tmp_path / "missing"))


def test_phone_numbers_stay_out_of_command_labels() -> None:
    from engine.radio.sms import send_command

    command = send_command("13800138000", "hi")
    assert "13800138000" not in repr(command) and "8000" in repr(command)
