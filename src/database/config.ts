// Where the database is: an embedded SQLite file, or a PostgreSQL server (a pool of connections).
export type DatabaseTarget =
  | { dialect: 'sqlite', file: string }
  | { dialect: 'postgres', url: string, poolSize: number }
