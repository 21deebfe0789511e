# flightdesk from R: Flight SQL through ADBC, live streams through the arrow package.
#
#   install.packages(c("arrow", "adbcdrivermanager", "adbcflightsql"))  # adbcflightsql: r-universe
#   flightdesk serve          # in a shell: grpc://127.0.0.1:8815
#
# Set FLIGHTDESK_TOKEN when the desk has tokens (read tokens can query and stream).

library(adbcdrivermanager)
library(adbcflightsql)
library(arrow)

url <- Sys.getenv("FLIGHTDESK_URL", "grpc://127.0.0.1:8815")
token <- Sys.getenv("FLIGHTDESK_TOKEN", "")

# ---- SQL over the desk's store (orders, fills, positions, events, performance_metrics) ----
db_args <- list(uri = url)
if (nzchar(token)) {
  db_args[["adbc.flight.sql.authorization_header"]] <- paste("Bearer", token)
}
db <- do.call(adbc_database_init, c(list(adbcflightsql()), db_args))
con <- adbc_connection_init(db)

fills <- con |>
  read_adbc("SELECT symbol, side, sum(qty) AS qty, avg(price) AS px FROM fills GROUP BY symbol, side") |>
  as.data.frame()
print(fills)

# The catalogue, as database tools browse it: no catalog, one schema ("main"), the tables
# above (type TABLE) with their Arrow column types.
print(as.data.frame(adbc_connection_get_table_types(con)))
print(adbc_connection_get_table_schema(con, NULL, "main", "fills"))

adbc_connection_release(con)
adbc_database_release(db)

# ---- Plain Flight: history and live quotes (tickets are JSON) ----
# arrow's Flight client is pyarrow's, through reticulate; tickets are the same JSON the
# Python SDK sends (a bare path descriptor would mean a live, endless stream).
ticket <- '{"stream": "quotes", "mode": "snapshot"}'
pa_flight <- reticulate::import("pyarrow.flight")
client <- pa_flight$connect(url)
# FlightCallOptions wants each header as a (bytes, bytes) tuple: an R string arrives in
# Python as str ("TypeError: expected bytes, str found"), so make bytes on the Python side
# and keep them unconverted (convert = FALSE).
py <- reticulate::import_builtins(convert = FALSE)
header <- function(name, value) reticulate::tuple(py$bytes(name, "utf-8"), py$bytes(value, "utf-8"))
options <- if (nzchar(token)) {
  pa_flight$FlightCallOptions(headers = list(header("authorization", paste("Bearer", token))))
} else {
  pa_flight$FlightCallOptions()
}
quotes <- client$do_get(pa_flight$Ticket(ticket), options)$read_all()
print(as.data.frame(quotes))

# Live: read a few batches of the quotes stream for one symbol, then cancel.
live <- client$do_get(pa_flight$Ticket('{"stream": "quotes", "symbols": ["BTCUSDT"]}'), options)
for (i in 1:5) {
  chunk <- live$read_chunk()
  print(as.data.frame(chunk$data)[, c("seq", "bid_px", "ask_px", "imbalance")])
}
live$cancel()
