# Writes the tables of bench/quality/run.sh as CSV files (numeric columns only, complete rows)
# into the directory given as the only argument. The data come from installed Debian packages:
# r-base-core (datasets), r-cran-mlbench and r-cran-ggplot2.
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]
numeric_only <- function(d) {
  d <- as.data.frame(d)
  d <- d[, vapply(d, is.numeric, logical(1)), drop = FALSE]
  d[stats::complete.cases(d), , drop = FALSE]
}
write_table <- function(d, name) {
  d <- numeric_only(d)
  utils::write.csv(d, file.path(out, paste0(name, ".csv")), row.names = FALSE)
  cat(name, nrow(d), "rows,", ncol(d), "columns\n")
}
data("faithful", package = "datasets")
write_table(faithful, "faithful")
data("Sonar", package = "mlbench")
write_table(Sonar, "sonar")        # Class (factor) dropped
data("Satellite", package = "mlbench")
write_table(Satellite, "satellite")  # classes (factor) dropped
data("diamonds", package = "ggplot2")
write_table(diamonds, "diamonds")  # cut, color, clarity (factors) dropped
