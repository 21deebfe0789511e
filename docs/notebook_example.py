# %% [markdown]
# # flightdesk from a notebook
#
# A notebook (Jupyter, VS Code, or plain `python docs/notebook_example.py`) talking to a
# running desk over Arrow Flight with the client SDK. Start a desk first:
#
# ```bash
# flightdesk serve                       # grpc://127.0.0.1:8815, no token on loopback
# ```
#
# or set `FLIGHTDESK_URL` (and `FLIGHTDESK_TOKEN` for a desk with tokens). With no desk
# running, this notebook starts an embedded one so it always runs.

# %%
import datetime as dt
import os
import time

import flightdesk

url = os.environ.get("FLIGHTDESK_URL")
embedded = None
if url is None:  # no desk given: run one in this process (sim venue + threshold strategy)
    embedded = flightdesk.Engine({"flight": {"port": 0},
                                  "desk": {"data_dir": os.environ.get("FLIGHTDESK_DATA",
                                                                      "./flightdesk-data")}})
    embedded.start()
    url = embedded.flight_uri
    time.sleep(3)  # let the sim trade a little

desk = flightdesk.connect(url, token=os.environ.get("FLIGHTDESK_TOKEN"))

# %% [markdown]
# ## Live quotes: an iterator of Arrow record batches

# %%
rows = 0
with desk.stream("quotes", symbols=["BTCUSDT"], columns=["ts_event", "seq", "bid_px",
                                                         "ask_px", "imbalance"]) as live:
    for batch in live:
        rows += batch.num_rows
        if rows >= 20:
            break
print(batch.slice(max(0, batch.num_rows - 5)))  # `.to_pandas()` too, if pandas is installed

# %% [markdown]
# ## Current state and history: pyarrow Tables (`.to_pandas()`, `polars.from_arrow`)

# %%
book = desk.snapshot("book", depth=5, symbols=["BTCUSDT"])
positions = desk.snapshot("positions")
fills = desk.history("fills", start=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
print(book.num_rows, "book levels;", positions.num_rows, "positions;", fills.num_rows, "fills")

# %% [markdown]
# ## SQL over the store (read-only Flight SQL; any ADBC Flight SQL client works too)

# %%
by_status = desk.sql("SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY n DESC")
print(by_status)

# %% [markdown]
# ## Status and control (a `trade` token is needed when the desk has tokens)

# %%
status = desk.status()
print("tick-to-trade µs:", status["tick_to_trade_us"], "drops:",
      [s["drops"] for s in status["subscribers"]])
desk.kill()        # no order passes risk after this
desk.kill(False)

# %%
desk.close()
if embedded is not None:
    embedded.stop()
