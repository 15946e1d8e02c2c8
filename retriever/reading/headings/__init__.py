"""Headings by the way a note spells them: Markdown, light markups (org, rst, AsciiDoc), plain text, Korean
statutes and FAQ questions; and the tables of contents that repeat them. reading/structure.py asks each in turn."""
