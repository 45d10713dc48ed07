"""If-None-Match, one rule for vector and raster tiles (api/conditional.py)."""

from terrawatch.api.conditional import MAX_HEADER, none_match


def test_none_match_weak_comparison_star_and_lists():
    tag = '"abc"'
    for header in ('"abc"', 'W/"abc"', '"x", "abc"', "*", ' "abc" '):
        assert none_match(header, tag), header
    assert none_match('"abc"', 'W/"abc"')  # a weak tag of ours matches its strong form
    for header in (None, "", '"abd"', '"abc', "abc", '"x", "y"'):
        assert not none_match(header, tag), header


def test_none_match_reads_a_bounded_header():
    tag = '"abc"'
    assert not none_match('"x", ' * (MAX_HEADER // 5) + tag, tag)  # past the cut: not parsed
