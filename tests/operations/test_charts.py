"""The dashboard's SVG charts as functions of their numbers: bars in proportion, exact values in each tooltip,
labels escaped, and a plain "nothing here" when there is nothing to draw."""

import xml.etree.ElementTree as ET

import pytest

from apps.operations.charts import BAR_COLOR, bar_chart, percent, share_bars


def drawn(svg) -> ET.Element:
    """The chart parsed: it must be well-formed to be inlined in the page."""
    return ET.fromstring(str(svg))  # noqa: S314 - the chart this process just drew


def bars(svg) -> list[dict]:
    return [{**rect.attrib, "title": rect.find("title").text} for rect in drawn(svg).iter("rect")]


def texts(svg) -> list[str]:
    return [text.text for text in drawn(svg).iter("text")]


class TestBarChart:
    @pytest.mark.parametrize("points", [[], [("2026-12-01", 0), ("2026-12-02", 0)]], ids=["no-days", "all-zero"])
    def test_nothing_to_draw_says_so_instead_of_drawing_empty_axes(self, points):
        chart = drawn(bar_chart(points))

        assert chart.get("aria-label") == "no data"
        assert texts(bar_chart(points)) == ["Nothing in this range"]
        assert list(chart.iter("rect")) == []

    def test_bars_stand_on_one_baseline_in_proportion_to_their_values(self):
        drawn_bars = bars(bar_chart([("mon", 40), ("tue", 10), ("wed", 20), ("thu", 0)]))
        heights = [float(bar["height"]) for bar in drawn_bars]
        bottoms = {round(float(bar["y"]) + float(bar["height"]), 1) for bar in drawn_bars}

        assert len(bottoms) == 1
        assert heights[0] == pytest.approx(4 * heights[1])
        assert heights[2] == pytest.approx(2 * heights[1])
        assert heights[3] == 0
        assert float(drawn_bars[0]["y"]) == 0  # the largest fills the plot

    def test_each_bar_tells_its_exact_value_as_the_label_writes_it(self):
        chart = bar_chart([("mon", 0.5), ("tue", 0.125)], label=percent)

        assert [bar["title"] for bar in bars(chart)] == ["mon: 50.0%", "tue: 12.5%"]
        assert drawn(chart).get("aria-label") == "2 bars, largest 50.0%"
        assert texts(chart)[-1] == "50.0%"  # the scale's top, in its corner

    def test_only_the_first_middle_and_last_days_are_labelled(self):
        days = [f"2026-12-0{day}" for day in range(1, 8)]

        labels = texts(bar_chart([(day, 1) for day in days]))[:-1]

        assert labels == ["2026-12-01", "2026-12-04", "2026-12-07"]

    @pytest.mark.parametrize(("count", "expected"), [(1, ["d0"]), (2, ["d0", "d1"])])
    def test_a_chart_of_one_or_two_days_labels_each_once(self, count, expected):
        labels = texts(bar_chart([(f"d{n}", 5) for n in range(count)]))[:-1]

        assert labels == expected

    def test_bars_take_the_color_given(self):
        assert {bar["fill"] for bar in bars(bar_chart([("a", 1), ("b", 2)], color="#2e7d32"))} == {"#2e7d32"}

    def test_names_and_labels_are_escaped(self):
        chart = bar_chart([("<script>alert(1)</script>", 3)], label=lambda value: f"<b>{value}</b>")

        assert "<script>" not in str(chart)
        assert "<b>" not in str(chart)
        assert bars(chart)[0]["title"] == "<script>alert(1)</script>: <b>3</b>"  # as text, once parsed


class TestShareBars:
    @pytest.mark.parametrize("rows", [[], [("paid", 0), ("failed", 0)]], ids=["no-rows", "all-zero"])
    def test_nothing_to_share_says_so(self, rows):
        assert drawn(share_bars(rows)).get("aria-label") == "no data"

    def test_each_row_shows_its_count_and_its_share_of_the_whole(self):
        chart = share_bars([("paid", 3000), ("failed", 1000)])

        assert "3,000 (75%)" in texts(chart)
        assert "1,000 (25%)" in texts(chart)
        assert [bar["title"] for bar in bars(chart)] == ["paid: 3,000", "failed: 1,000"]

    def test_bar_lengths_follow_the_counts_and_a_zero_still_shows(self):
        widths = [float(bar["width"]) for bar in bars(share_bars([("paid", 6), ("failed", 2), ("canceled", 0)]))]

        assert widths[0] == pytest.approx(3 * widths[1])
        assert 0 < widths[2] < widths[1]

    def test_the_chart_grows_a_line_per_row(self):
        one = drawn(share_bars([("paid", 1)])).get("viewBox").split()
        three = drawn(share_bars([("paid", 1), ("failed", 1), ("open", 1)])).get("viewBox").split()

        assert float(three[3]) == pytest.approx(3 * float(one[3]))

    def test_a_row_takes_its_own_color_or_the_default(self):
        chart = share_bars([("paid", 2), ("failed", 1)], colors={"failed": "#c62828"})

        assert [bar["fill"] for bar in bars(chart)] == [BAR_COLOR, "#c62828"]

    def test_names_are_escaped(self):
        chart = share_bars([("<i>refunded</i> & more", 1)])

        assert "<i>" not in str(chart)
        assert texts(chart)[0] == "<i>refunded</i> & more"


@pytest.mark.parametrize(
    ("value", "text"), [(None, "-"), (0, "0.0%"), (0.12345, "12.3%"), (0.9996, "100.0%"), (1, "100.0%")]
)
def test_percent_writes_a_share_with_one_decimal_or_a_dash_for_none(value, text):
    assert percent(value) == text
