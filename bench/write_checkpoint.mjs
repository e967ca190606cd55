// Writes a classic Delta checkpoint (N.checkpoint.parquet and _last_checkpoint) for a table made
// by gen_lake.py --big-log, with DuckDB as the Parquet writer: the benchmark must read a file that
// another writer produced, not one our own code shaped to suit our reader.
//
//   node bench/write_checkpoint.mjs TABLE_DIR
//
// Needs @duckdb/node-api (bench/check_bench.sh installs it from npm into its scratch folder and
// sets NODE_PATH). Only add-only logs are supported (what gen_lake.py writes): a remove is refused.
import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'node:fs';
import path from 'node:path';

const table = process.argv[2];
if (!table) {
  console.error('usage: write_checkpoint.mjs TABLE_DIR');
  process.exit(2);
}
const logDir = path.join(table, '_delta_log');
const commits = fs.readdirSync(logDir).filter((n) => /^\d{20}\.json$/.test(n)).sort();
if (commits.length === 0) throw new Error(`no commits in ${logDir}`);
const version = Number(commits[commits.length - 1].slice(0, 20));
const out = path.join(logDir, `${String(version).padStart(20, '0')}.checkpoint.parquet`);

const MAP = 'MAP(VARCHAR, VARCHAR)';
const ADD = `STRUCT(path VARCHAR, partitionValues ${MAP}, size BIGINT, modificationTime BIGINT,
  dataChange BOOLEAN, stats VARCHAR, tags ${MAP})`;
const REMOVE = `STRUCT(path VARCHAR, deletionTimestamp BIGINT, dataChange BOOLEAN,
  extendedFileMetadata BOOLEAN, partitionValues ${MAP}, size BIGINT)`;
const META = `STRUCT(id VARCHAR, name VARCHAR, description VARCHAR,
  format STRUCT(provider VARCHAR, options ${MAP}), schemaString VARCHAR,
  partitionColumns VARCHAR[], configuration ${MAP}, createdTime BIGINT)`;
const PROTOCOL = 'STRUCT(minReaderVersion INTEGER, minWriterVersion INTEGER)';
const TXN = 'STRUCT(appId VARCHAR, version BIGINT, lastUpdated BIGINT)';
const q = (s) => `'${s.replaceAll("'", "''")}'`;

const db = await DuckDBInstance.create(':memory:');
const c = await db.connect();
await c.run(`CREATE TABLE log AS SELECT * FROM read_json(${q(path.join(logDir, '*.json'))},
  format = 'newline_delimited', filename = true,
  columns = {add: '${ADD}', remove: '${REMOVE}', metaData: '${META}', protocol: '${PROTOCOL}'})`);
const removes = await c.runAndReadAll('SELECT count(*) FROM log WHERE remove IS NOT NULL');
if (Number(removes.getRows()[0][0]) !== 0) throw new Error('the log has removes: not supported');
// A checkpoint row per action, each row holding one non-null column, as Spark writes them.
await c.run(`COPY (
  SELECT NULL::${TXN} AS txn, NULL::${ADD} AS add, NULL::${REMOVE} AS remove,
         NULL::${META} AS metaData, protocol FROM log WHERE protocol IS NOT NULL
  UNION ALL
  SELECT NULL, NULL, NULL, metaData, NULL FROM log WHERE metaData IS NOT NULL
  UNION ALL
  SELECT NULL, struct_pack(path := add.path, partitionValues := add.partitionValues,
                           size := add.size, modificationTime := add.modificationTime,
                           dataChange := false, stats := add.stats, tags := add.tags),
         NULL, NULL, NULL FROM log WHERE add IS NOT NULL
) TO ${q(out)} (FORMAT parquet, COMPRESSION snappy)`);
const rows = await c.runAndReadAll(`SELECT count(*) FROM read_parquet(${q(out)})`);
const size = Number(rows.getRows()[0][0]);
fs.writeFileSync(path.join(logDir, '_last_checkpoint'), JSON.stringify({ version, size }) + '\n');
console.log(`write_checkpoint: ${out}: ${size} actions`);
