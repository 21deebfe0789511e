"""Market data: books, the book keeper, batchers, bars, venue interfaces."""
