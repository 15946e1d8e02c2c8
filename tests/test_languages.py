"""A folder of Korean and English notes: a question in one language finds its answer in the other, and a passage
of the question's own language that only shares a word with it does not win for that alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from retriever import Retriever
from retriever.reading.language import is_korean, passage_languages

ENGLISH = {  # an HTTP client's docs: one section each
    "Retries": "Failed requests are retried up to maxRetries times (default 5), waiting minTimeout between attempts.",
    "Timeouts": "headersTimeout is how long the client waits for the response headers; bodyTimeout for the body.",
    "Pipelining": "With pipelining set above 1, several requests share one connection and are sent back to back.",
    "Keep-alive": "An idle socket is kept open for keepAliveTimeout milliseconds so the next request can reuse it.",
    "Proxy": "ProxyAgent sends every request through a proxy; credentials go in the token option as basic auth.",
    "Mocking": "MockAgent intercepts requests in tests and answers them with replies registered beforehand.",
    "Redirects": "Redirects are not followed unless the redirect interceptor is installed with maxRedirections.",
    "Streams": "A request body may be a stream; the connection is busy until the whole body has been written.",
    "Cookies": "getCookies reads the Cookie header of a Headers object into a plain object of names and values.",
    "Caching": "The cache interceptor stores responses in memory by default, up to 100 MB, honouring Cache-Control.",
    "DNS": "The DNS interceptor caches resolved addresses for their time to live and rotates between them.",
    "HTTP/2": "Setting allowH2 lets the client negotiate HTTP/2 through ALPN when the server offers it.",
    "Errors": "Every error undici throws has a code such as UND_ERR_CONNECT_TIMEOUT to tell failures apart.",
    "Abort": "Pass an AbortSignal as signal to cancel a request; the promise then rejects with an AbortError.",
    "Compression": "The decompress interceptor inflates gzip, deflate and brotli bodies as they arrive.",
    "WebSocket": "WebSocket opens a connection with an HTTP upgrade; pings are answered with pongs automatically.",
    "TLS": "Client certificates are passed in the connect option as cert and key, with ca for a private authority.",
    "Unix sockets": "socketPath connects to a Unix domain socket instead of a TCP port on the same host.",
    "Diagnostics": "Subscribe to undici:request:create on diagnostics_channel to see each request as it starts.",
    "Pools": "A Pool keeps several connections to one origin and hands each request to a free one.",
    "Balancing": "BalancedPool spreads requests over several upstream origins, weighing each by its recent errors.",
    "Form data": "FormData bodies are encoded as multipart/form-data with a boundary chosen for each request.",
    "Fetch": "fetch follows the WHATWG standard; its Response body can be read once as text, JSON or a stream.",
    "Headers": "Header names are case-insensitive; a header given twice is joined with a comma.",
}
KOREAN = {  # a payment service's guides
    "결제 요청 실패": "결제 요청이 실패하면 가맹점은 응답의 오류 코드를 확인한 뒤 같은 주문번호로 다시 요청하지 않습니다.",
    "취소": "승인된 결제는 당일 안에 전체 취소할 수 있고, 그 뒤에는 부분 취소로 처리합니다.",
    "가상계좌": "가상계좌는 입금 기한이 지나면 자동으로 만료되며, 입금 통보는 notiUrl로 전송됩니다.",
    "정산": "정산 금액은 결제일로부터 영업일 기준 3일 뒤 등록된 계좌로 입금됩니다.",
    "현금영수증": "현금영수증은 거래 후 발급 요청을 보내면 국세청에 전송되며 실시간 발급이 아닙니다.",
    "암호화": "개인정보 필드는 AES-256으로 암호화해 전송하고 키는 가맹점 관리자 화면에서 발급합니다.",
    "해시 검증": "응답의 해시값을 가맹점 키로 다시 계산해 위변조가 없는지 확인해야 합니다.",
    "빌키": "정기결제용 빌키는 최초 한 번 카드 인증으로 발급하고 안전한 저장소에 보관합니다.",
    "노티 재전송": "가맹점 서버가 노티에 OK를 돌려주지 않으면 최대 다섯 번까지 일정 간격으로 다시 보냅니다.",
    "웹뷰": "앱의 웹뷰에서는 카드사 앱을 여는 intent 주소를 직접 처리해야 결제가 이어집니다.",
    "테스트 환경": "테스트 상점 아이디로 결제하면 실제 승인은 일어나지 않고 결과만 돌아옵니다.",
    "세금 유형": "과세, 면세, 복합과세 상품은 결제 요청에 과세 구분과 면세 금액을 함께 보내야 합니다.",
    "봉사료": "봉사료는 공급가액과 따로 보내며 부가세가 붙지 않습니다.",
    "간편결제": "간편결제는 등록한 카드나 계좌로 비밀번호만 입력해 결제합니다.",
    "계좌이체": "실시간 계좌이체는 은행 점검 시간에는 결제할 수 없습니다.",
    "휴대폰 결제": "휴대폰 결제는 통신사 한도 안에서만 가능하고 다음 달 요금에 합산됩니다.",
    "부분 환불": "부분 환불은 남은 금액 안에서 여러 번 할 수 있으며 마지막 환불 후 거래가 종료됩니다.",
    "주문번호": "주문번호는 가맹점 안에서 겹치지 않게 만들어야 하고 최대 64자입니다.",
    "결제 창": "결제 창은 팝업이나 새 페이지로 띄울 수 있고 모바일에서는 새 페이지가 기본입니다.",
    "IP 허용": "운영 환경에서는 가맹점 서버의 공인 IP를 등록해야 결제 요청을 받아들입니다.",
    "수수료": "카드 수수료는 업종과 매출 규모에 따라 다르며 계약서에 적힌 요율이 적용됩니다.",
    "에스크로": "에스크로 결제는 구매자가 구매 확정을 해야 가맹점에 정산됩니다.",
    "해외 카드": "해외 카드는 별도 계약이 필요하며 원화 결제만 지원합니다.",
    "응답 코드": "응답 코드 0021은 정상 승인이고 그 밖의 코드는 실패 사유를 뜻합니다.",
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("languages")
    notes = work / "notes"
    notes.mkdir()
    for name, sections in (("client.md", ENGLISH), ("payments.md", KOREAN)):
        text = "".join(f"## {heading}\n\n{body}\n\n" for heading, body in sections.items())
        (notes / name).write_text(text, encoding="utf-8")
    Retriever(notes, work / "index").index()
    return notes, work / "index"


def test_a_passage_is_korean_by_its_share_of_hangul() -> None:
    assert is_korean("MockPool에 intercept 한 번 걸면 요청 두 번 다 가로채?")  # API names kept in English
    assert is_korean("가맹점 서버의 공인 IP를 등록해야 결제 요청을 받아들입니다.")
    assert not is_korean("Failed requests are retried up to maxRetries times (default 5).")
    assert not is_korean("fetch('/api', { method: 'POST' }) // 요청")  # code with a Korean comment
    assert not is_korean("12345 ---")
    assert passage_languages(["요청", "request"]).tolist() == [True, False]


QUESTIONS = {  # Korean questions whose answer is in the English docs, each sharing words with a Korean passage
    "요청이 실패하면 몇 번까지 다시 시도해?": "Retries",
    "요청 본문이 스트림이면 연결은 언제까지 못 써?": "Streams",
    "서버가 보내는 응답을 메모리에 얼마나 저장해?": "Caching",
    "테스트에서 요청을 가로채서 미리 정한 응답을 주려면?": "Mocking",
}


def test_a_korean_question_finds_its_english_answer_above_korean_passages_that_share_its_words(
    mixed: tuple[Path, Path],
) -> None:
    notes, index = mixed
    retriever = Retriever(notes, index)
    missed = {q: [h.heading for h in retriever.ask(q, k=3)] for q in QUESTIONS}
    missed = {q: top for q, top in missed.items() if QUESTIONS[q] not in top}
    assert missed == {}  # normalised over both languages at once, two of the four answers ranked 4th


def test_each_language_is_normalised_only_where_both_are_many(mixed: tuple[Path, Path]) -> None:
    """Both languages hold 24 passages here; a folder with a few passages of the other language ranks as before."""
    from retriever.search.ranking import MIN_LANGUAGE, chunk_korean, language_groups

    notes, index = mixed
    view = Retriever(notes, index).loaded()
    rows = np.arange(len(view.manifest.chunks))
    korean = view.derived(chunk_korean)
    assert korean.sum() >= MIN_LANGUAGE and (~korean).sum() >= MIN_LANGUAGE
    assert len(language_groups(view, rows, rows)) == 2
    few_english = np.concatenate([np.flatnonzero(korean), np.flatnonzero(~korean)[: MIN_LANGUAGE - 1]])
    assert language_groups(view, rows, np.sort(few_english)) == []


def test_a_folder_of_one_language_with_a_note_in_another_ranks_as_before(
    tmp_path: Path,
) -> None:
    """No second language among the candidates: ranking with or without per-language normalisation is the same."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "payments.md").write_text("".join(f"## {h}\n\n{b}\n\n" for h, b in KOREAN.items()), encoding="utf-8")
    (notes / "one.md").write_text("## Retries\n\n" + ENGLISH["Retries"] + "\n", encoding="utf-8")
    retriever = Retriever(notes, tmp_path / "index", models=["e5"])
    plain = Retriever(notes, tmp_path / "index", models=["e5"])
    plain.ranking = replace(plain.ranking, by_language=False)
    for question in ("How long is a cash receipt delayed?", "What does response code 0021 mean?", "재시도 횟수"):
        assert [(h.heading, h.score) for h in retriever.ask(question, k=5)] == [
            (h.heading, h.score) for h in plain.ask(question, k=5)
        ]


SHARED_WORD = {  # Korean questions about the English docs; a Korean passage holds one of their words (취소, 주소)
    "요청을 취소하려면 무엇을 넘겨?": "Abort",
    "주소 캐시는 얼마나 유지돼?": "DNS",
}


def test_bm25_only_reorders_within_a_language_so_a_shared_word_does_not_lift_a_korean_passage_over_english(
    mixed: tuple[Path, Path],
) -> None:
    """An English passage cannot hold a Hangul word, so BM25 of a Korean question lifted Korean passages above
    every English one; now each language's best lexical match counts the same."""
    notes, index = mixed
    retriever = Retriever(notes, index)
    ranks = {q: [h.heading for h in retriever.ask(q, k=10)] for q in SHARED_WORD}
    missed = {q: top[:3] for q, top in ranks.items() if SHARED_WORD[q] not in top[:2]}
    assert missed == {}  # with BM25 on each language's own scale: 3rd (behind 취소 and 결제 요청 실패) and 4th


def test_a_question_knows_which_of_its_words_an_english_passage_could_hold() -> None:
    from retriever.index.lexical import term_ids

    vocab = {"요청": 0, "취소": 1, "abortsignal": 2, "debian": 3}
    ids, coverage, foreign = term_ids(vocab, "요청을 취소하려면 AbortSignal을 넘겨?")
    assert sorted(ids) == [0, 1, 2] and foreign == pytest.approx(coverage / 3)
