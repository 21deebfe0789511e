"""The sim venue: a seeded exchange simulator speaking Binance spot's wire format."""
