"""Security review, logs: what the redaction processor missed, and the standard-library loggers
(faust, aiohttp, aiokafka, kafka) that bypassed it."""

from __future__ import annotations

import io
import json
import logging

import orjson
import pytest
import structlog

from pipeline.logs import configure, get_logger, logging_config, redact_pii, scrub_text, strip_urls


def _text(event: dict) -> str:
    return json.dumps(redact_pii(None, "info", event), ensure_ascii=False)


@pytest.mark.parametrize("value", [
    "13812345678", "138 1234 5678", "138-1234-5678", "+86 138 1234 5678", "+86-13812345678",
    "+8613812345678", "0086 13812345678", "0086-138-1234-5678", "86 13812345678",
    "１３８１２３４５６７８", "１３８ １２３４ ５６７８", "＋８６ １３８－１２３４－５６７８",
])
def test_mobile_numbers_in_every_common_spelling_are_masked(value):
    out = scrub_text(f"回电 {value} 谢谢")
    assert out == "回电 [phone] 谢谢", out


@pytest.mark.parametrize("value", [
    "41032519450101123X", "410325194501011234", "41032519450101123x", "４１０３２５１９４５０１０１１２３Ｘ",
    "410325450101123",  # first-generation, 15 digits: area, yymmdd, sequence
])
def test_18_and_15_digit_id_numbers_are_masked(value):
    assert scrub_text(f"身份证 {value}。") == "身份证 [id-number]。"


def test_e_mail_addresses_are_masked():
    for value in ("wang@example.cn", "li.wei+duty@mail.example.com.cn", "A_B@X-Y.ORG"):
        assert scrub_text(f"sent to {value}, ok") == "sent to [email], ok"
    assert "wang@example.cn" not in _text({"event": "x", "recipient": {"to": ["wang@example.cn"]}})


def test_values_nested_deeper_than_six_levels_are_still_redacted():
    deep: dict = {"note": "13812345678"}
    for _ in range(10):
        deep = {"level": deep, "name": "张三"}
    text = _text({"event": "x", "deep": deep})
    assert "13812345678" not in text and "张三" not in text and "[phone]" in text
    bomb: list = ["13812345678"]
    for _ in range(1000):  # deeper than anything sane: replaced, never passed through
        bomb = [bomb]
    assert "13812345678" not in _text({"event": "x", "bomb": bomb})


def test_non_string_values_are_redacted_too():
    text = _text({"event": "x", "caller": 13812345678, "ids": (410325194501011234,),
                  "keys": {"13812345678": 1}, "raw": b"call 13812345678",
                  "obj": ValueError("boom 13900001111"), "offset": 7, "ratio": 0.5, "ok": True})
    for secret in ("13812345678", "410325194501011234", "13900001111"):
        assert secret not in text, text
    out = redact_pii(None, "info", {"event": "x", "offset": 7, "ratio": 0.5, "ok": True, "at": 1782864000000})
    assert (out["offset"], out["ratio"], out["ok"], out["at"]) == (7, 0.5, True, 1782864000000)


def test_codes_and_ids_are_not_personal_data_and_stay():
    out = redact_pii(None, "info", {"event": "incident 410325101001001~inactivity:s1~1782864000000 opened",
                                    "grid_id": "410325101001001", "path": ["410325", "410325101001001"],
                                    "unit": "410325101001001", "at": "2026-09-30T02:15:00.000Z"})
    assert out["grid_id"] == out["unit"] == "410325101001001" and out["path"][1] == "410325101001001"
    assert "410325101001001~inactivity" in out["event"] and out["at"] == "2026-09-30T02:15:00.000Z"


def test_url_query_strings_and_user_info_are_stripped():
    robot = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef&timestamp=1&sign=abc%3D"
    assert strip_urls(f"POST {robot} failed") == "POST https://oapi.dingtalk.com/robot/send?[redacted] failed"
    assert strip_urls("http://user:pw@gw.example/hook#frag") == "http://gw.example/hook?[redacted]"
    assert strip_urls('url="https://gw.example/act/tok?x=1"') == 'url="https://gw.example/act/tok?[redacted]"'
    assert strip_urls("https://gw.example/hook") == "https://gw.example/hook"
    text = _text({"event": "x", "url": robot, "args": ["access_token=zzz"]})
    assert "0123456789abcdef" not in text and "zzz" not in text


@pytest.mark.parametrize("name", ["faust", "aiohttp.client", "aiokafka", "kafka.conn", "mode"])
def test_standard_library_loggers_pass_the_same_processors(name):
    buf = io.StringIO()
    configure("info", stream=buf)
    try:
        lg = logging.getLogger(name)
        lg.warning("POST %s for %s from wang@example.cn", "https://h/x?access_token=t0k3n", "13812345678")
        try:
            raise RuntimeError("id 41032519450101123X")
        except RuntimeError:
            lg.error("failed", exc_info=True)
    finally:
        logging.config.dictConfig(logging_config(logging.WARNING, stream=io.StringIO()))
    lines = [orjson.loads(x) for x in buf.getvalue().splitlines()]
    assert len(lines) == 2 and all(x["logger"] == name for x in lines), lines
    text = buf.getvalue()
    for secret in ("t0k3n", "13812345678", "wang@example.cn", "41032519450101123X"):
        assert secret not in text, text
    assert "[phone]" in lines[0]["event"] and "RuntimeError" in lines[1]["exception"]


def test_faust_gets_the_redacting_handler_too():
    """faust's worker replaces the root handler with its own; it is handed ours instead."""
    import inspect

    from pipeline import app

    assert "logging_config=logging_config(" in inspect.getsource(app.run_worker)
    cfg = logging_config(logging.WARNING)
    assert cfg["formatters"]["gridwatch"]["()"] is structlog.stdlib.ProcessorFormatter
    assert redact_pii in cfg["formatters"]["gridwatch"]["processors"]
    assert cfg["disable_existing_loggers"] is False


def test_structlog_lines_still_redacted_after_configure():
    buf = io.StringIO()
    configure("info", stream=buf)
    try:
        get_logger().info("delivery_failed", error="to https://robot/x?access_token=abc said 138-1234-5678",
                          count=13812345678)
    finally:
        logging.config.dictConfig(logging_config(logging.WARNING, stream=io.StringIO()))
    line = orjson.loads(buf.getvalue().splitlines()[-1])
    assert line["error"] == "to https://robot/x?[redacted] said [phone]" and line["count"] == "[phone]"
