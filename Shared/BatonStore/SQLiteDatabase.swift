import Foundation
import GRDB

/// Opens a SQLite database in WAL mode (a GRDB `DatabasePool`) and runs its migrations.
enum SQLiteDatabase {
    static func open(path: String, migrator: DatabaseMigrator) throws -> DatabasePool {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let pool = try DatabasePool(path: path, configuration: configuration)
        try migrator.migrate(pool)
        return pool
    }

    /// Whether `sql` (a `SELECT EXISTS (…)`) finds a row, read without taking the write lock: a
    /// claim looks first, since most polls find nothing due.
    static func exists(_ pool: DatabasePool, _ sql: String, _ arguments: StatementArguments) async throws -> Bool {
        try await pool.read { db in try Bool.fetchOne(try db.cachedStatement(sql: sql), arguments: arguments) ?? false }
    }
}
