"""Notes -> chunks: files read into text (documents parsed, their extraction cached), structure found, sections cut
into chunks."""
