# Writes the tables of bench/quality/run.sh as CSV files (numeric columns only, complete rows)
# into the directory given as the only argument. The data come from installed Debian packages:
# r-base-core (datasets), r-cran-mlbench, r-cran-ggplot2 and r-cran-dslabs.
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
data("movielens", package = "dslabs")
# year (of the film's release), rating (0.5 to 5 in steps of 0.5) and timestamp (of the rating,
# seconds since 1970); movieId and userId are identifiers, title and genres are text
write_table(movielens[, c("year", "rating", "timestamp")], "movielens")
