"""The report's pieces: every text escaped, breaks only at separators, a page that is well-formed XML and
loads nothing from outside."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from bids_factory.report.html import breakable, document, e, path, paths, plural, row, table


def test_text_from_a_header_is_escaped_never_markup():
    assert e('T1 <MPRAGE> & "quoted" \'x\'') == "T1 &lt;MPRAGE&gt; &amp; &quot;quoted&quot; &#x27;x&#x27;"
    assert e(None) == "" and e(0) == "0"
    assert row(["<b>"], cls='a"b') == '<tr class="a&quot;b"><td><b></td></tr>'  # cells are given as HTML


def test_long_tokens_break_after_separators_only_and_stay_escaped():
    assert breakable("DCM/2024_01\\a<b") == "DCM/<wbr />2024_<wbr />01\\<wbr />a&lt;b"
    assert "<wbr />" not in breakable("ORIGINALPRIMARYMPRAGEWITHOUTSEPARATORS")
    assert path("") == "" and path(None) == ""
    assert paths(["a/b", "c"]) == '<span class="path">a/<wbr />b</span><br /><span class="path">c</span>'


def test_numbers_align_right_and_plurals_count():
    table_html = table(["series", "count"], [row(["<code>x</code>", "3"], nums=(1,))], "placed", nums=(1,))
    assert '<th class="num">count</th>' in table_html and '<td class="num">3</td>' in table_html
    assert '<td class="num"><code>' not in table_html
    assert (plural(1, "session"), plural(0, "session"), plural(2, "image")) == ("1 session", "0 sessions", "2 images")


def test_a_page_is_well_formed_xml_with_nothing_from_outside():
    page = document("report <sub-01> & co", [table(["a"], [row([e("<&>")])]), "<p>x</p>"])
    root = ET.fromstring(page.split("\n", 1)[1])  # after the doctype
    ns = "{http://www.w3.org/1999/xhtml}"
    assert root.find(f"{ns}head/{ns}title").text == "report <sub-01> & co"
    assert root.find(f".//{ns}td").text == "<&>"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "@import" not in page and "url(" not in page
