-- Every settlement rewrites the state of the pools it trades on (a DLMM pool's bins: 3-10 kB of JSON). Compressing
-- it on each write (pglz, the default; the embedded server has no lz4) made that UPDATE cost PostgreSQL 162-176 µs;
-- stored out of line uncompressed, 96-103 µs (the largest pool's state, 3,000 updates each, embedded PostgreSQL 18,
-- 2026-12-06). The price is a few kB more per pool row version, and pools are a handful of rows.
ALTER TABLE pools ALTER COLUMN state SET STORAGE EXTERNAL;
