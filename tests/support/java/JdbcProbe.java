// A real JDBC client for sqlgate tests: runs a fixed scenario through the PostgreSQL JDBC
// driver and prints one line per step, "PROBE {json}", parsed by tests/support/jdbc.py.
//
// Usage: java -cp <classes>:<postgresql.jar> JdbcProbe <jdbc-url> <user>
// The password comes from the SQLGATE_JDBC_PASSWORD environment variable (unset = none).
// Exit status: 0 all steps ok, 2 some step failed, 1 usage error.
//
// Only a temporary table (pg_temp) is used, so it can run against any database.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.postgresql.PGStatement;

public final class JdbcProbe {
    static final String TABLE = "sqlgate_jdbc_probe";
    static final int ROWS = 10;
    static final int SELECT_RUNS = 6;
    static final LocalDateTime BASE_TS = LocalDateTime.of(2024, 1, 2, 3, 4, 5, 123456000);

    interface Step {
        void run(Map<String, Object> out) throws Exception;
    }

    private final List<String> failed = new ArrayList<>();
    private Connection conn;

    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: JdbcProbe <jdbc-url> <user>");
            System.exit(1);
        }
        System.exit(new JdbcProbe().run(args[0], args[1]));
    }

    static String expectedName(int i) {
        return "row-" + i + "-\u00fcn\u00efc\u00f8d\u00e9-\u2713";
    }

    static BigDecimal expectedAmount(int i) {
        return new BigDecimal(i).multiply(new BigDecimal("1.25")).setScale(2);
    }

    static LocalDateTime expectedTs(int i) {
        return BASE_TS.plusDays(i);
    }

    static boolean expectedFlag(int i) {
        return i % 2 == 0;
    }

    int run(String url, String user) {
        Properties props = new Properties();
        props.setProperty("user", user);
        String password = System.getenv("SQLGATE_JDBC_PASSWORD");
        if (password != null) {
            props.setProperty("password", password);
        }
        props.setProperty("ApplicationName", "sqlgate-jdbc-probe");

        boolean connected = step("connect", out -> {
            conn = DriverManager.getConnection(url, props);
            DatabaseMetaData md = conn.getMetaData();
            out.put("driver_version", md.getDriverVersion());
            out.put("server_version", md.getDatabaseProductVersion());
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT current_user, current_database()")) {
                rs.next();
                out.put("current_user", rs.getString(1));
                out.put("current_database", rs.getString(2));
            }
        });
        if (connected) {
            step("create_temp_table", out -> {
                try (Statement st = conn.createStatement()) {
                    st.execute("CREATE TEMPORARY TABLE " + TABLE + " (id int PRIMARY KEY, "
                            + "name text NOT NULL, amount numeric(12,2), created_at timestamp, "
                            + "flag boolean)");
                }
            });
            step("insert_prepared", this::insertPrepared);
            step("select_binary", this::selectBinary);
            step("batch_insert", this::batchInsert);
            step("txn_commit", this::txnCommit);
            step("txn_rollback", this::txnRollback);
            step("error_recovery", this::errorRecovery);
            step("txn_error", this::txnError);
            step("prepared_error", this::preparedError);
            step("metadata_tables", this::metadataTables);
            step("close", out -> {
                conn.setAutoCommit(true);
                try (Statement st = conn.createStatement()) {
                    st.execute("DROP TABLE IF EXISTS pg_temp." + TABLE);
                }
                conn.close();
                out.put("closed", conn.isClosed());
            });
        }
        Map<String, Object> done = new LinkedHashMap<>();
        done.put("step", "done");
        done.put("ok", failed.isEmpty());
        done.put("failed", failed);
        emit(done);
        return failed.isEmpty() ? 0 : 2;
    }

    boolean step(String name, Step body) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("step", name);
        out.put("ok", Boolean.TRUE);
        long t0 = System.nanoTime();
        try {
            body.run(out);
        } catch (Throwable e) {
            out.put("ok", Boolean.FALSE);
            describe(out, e);
        }
        out.put("ms", (System.nanoTime() - t0) / 1_000_000);
        boolean ok = Boolean.TRUE.equals(out.get("ok"));
        if (!ok) {
            failed.add(name);
        }
        emit(out);
        return ok;
    }

    static void describe(Map<String, Object> out, Throwable e) {
        out.put("exception", e.getClass().getName());
        out.put("error", String.valueOf(e.getMessage()));
        if (e instanceof SQLException) {
            out.put("sqlstate", ((SQLException) e).getSQLState());
        }
    }

    static void check(boolean cond, String what) {
        if (!cond) {
            throw new IllegalStateException("check failed: " + what);
        }
    }

    void insertPrepared(Map<String, Object> out) throws SQLException {
        String q = "INSERT INTO " + TABLE + " (id, name, amount, created_at, flag) "
                + "VALUES (?, ?, ?, ?, ?)";
        try (PreparedStatement ps = conn.prepareStatement(q)) {
            PGStatement pg = ps.unwrap(PGStatement.class);
            out.put("prepare_threshold", pg.getPrepareThreshold());
            int inserted = 0;
            for (int i = 1; i <= ROWS; i++) {
                ps.setInt(1, i);
                ps.setString(2, expectedName(i));
                ps.setBigDecimal(3, expectedAmount(i));
                ps.setTimestamp(4, Timestamp.valueOf(expectedTs(i)));
                ps.setBoolean(5, expectedFlag(i));
                inserted += ps.executeUpdate();
            }
            out.put("executions", ROWS);
            out.put("inserted", inserted);
            out.put("server_prepared", pg.isUseServerPrepare());
            check(inserted == ROWS, "inserted " + inserted + " rows");
        }
        // Named statements the backend holds for this session (info: a pooling gateway may
        // legitimately show something else).
        try (Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_prepared_statements "
                     + "WHERE statement LIKE 'INSERT INTO " + TABLE + "%'")) {
            rs.next();
            out.put("backend_named_statements", rs.getInt(1));
        }
    }

    void selectBinary(Map<String, Object> out) throws SQLException {
        String q = "SELECT id, name, amount, created_at, flag FROM " + TABLE
                + " WHERE id >= ? ORDER BY id";
        List<String> mismatches = new ArrayList<>();
        List<Object> firstRow = new ArrayList<>();
        int rows = 0;
        try (PreparedStatement ps = conn.prepareStatement(q)) {
            for (int run = 1; run <= SELECT_RUNS; run++) {
                ps.setInt(1, 1);
                rows = 0;
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        rows++;
                        int id = rs.getInt("id");
                        String name = rs.getString("name");
                        BigDecimal amount = rs.getBigDecimal("amount");
                        Timestamp ts = rs.getTimestamp("created_at");
                        boolean flag = rs.getBoolean("flag");
                        if (run == SELECT_RUNS) {
                            if (rows == 1) {
                                firstRow.add(id);
                                firstRow.add(name);
                                firstRow.add(amount.toPlainString());
                                firstRow.add(ts.toLocalDateTime().toString());
                                firstRow.add(flag);
                            }
                            if (id != rows) {
                                mismatches.add("id " + id + " at row " + rows);
                            }
                            if (!expectedName(id).equals(name)) {
                                mismatches.add("name " + name);
                            }
                            if (expectedAmount(id).compareTo(amount) != 0) {
                                mismatches.add("amount " + amount);
                            }
                            if (!expectedTs(id).equals(ts.toLocalDateTime())) {
                                mismatches.add("created_at " + ts);
                            }
                            if (expectedFlag(id) != flag) {
                                mismatches.add("flag " + flag);
                            }
                            if (!String.valueOf(id).equals(rs.getString("id"))) {
                                mismatches.add("getString(id) " + rs.getString("id"));
                            }
                        }
                    }
                }
            }
            out.put("server_prepared", ps.unwrap(PGStatement.class).isUseServerPrepare());
        }
        out.put("runs", SELECT_RUNS);
        out.put("rows", rows);
        out.put("first_row", firstRow);
        out.put("mismatches", mismatches);
        check(rows == ROWS, "selected " + rows + " rows");
        check(mismatches.isEmpty(), "values round-trip: " + mismatches);
    }

    void batchInsert(Map<String, Object> out) throws SQLException {
        String q = "INSERT INTO " + TABLE + " (id, name) VALUES (?, ?)";
        int total = 0;
        try (PreparedStatement ps = conn.prepareStatement(q)) {
            for (int i = 0; i < 20; i++) {
                ps.setInt(1, 500 + i);
                ps.setString(2, "batch-" + i);
                ps.addBatch();
            }
            for (int c : ps.executeBatch()) {
                total += (c == Statement.SUCCESS_NO_INFO) ? 1 : c;
            }
        }
        int count = countWhere("id >= 500 AND id < 520");
        out.put("batch_size", 20);
        out.put("update_total", total);
        out.put("count", count);
        check(count == 20, "batch rows visible: " + count);
        try (Statement st = conn.createStatement()) {
            st.executeUpdate("DELETE FROM " + TABLE + " WHERE id >= 500 AND id < 520");
        }
    }

    int countWhere(String where) throws SQLException {
        try (Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT count(*) FROM " + TABLE + " WHERE " + where)) {
            rs.next();
            return rs.getInt(1);
        }
    }

    void txnCommit(Map<String, Object> out) throws SQLException {
        conn.setAutoCommit(false);
        try (Statement st = conn.createStatement()) {
            st.executeUpdate("INSERT INTO " + TABLE + " (id, name) VALUES (1000, 'committed')");
            conn.commit();
        } finally {
            conn.setAutoCommit(true);
        }
        int count = countWhere("id = 1000");
        out.put("visible_after_commit", count);
        check(count == 1, "committed row visible");
    }

    void txnRollback(Map<String, Object> out) throws SQLException {
        conn.setAutoCommit(false);
        int inside;
        try (Statement st = conn.createStatement()) {
            st.executeUpdate("INSERT INTO " + TABLE + " (id, name) VALUES (1001, 'rolled back')");
            inside = countWhere("id = 1001");
            conn.rollback();
        } finally {
            conn.setAutoCommit(true);
        }
        int after = countWhere("id = 1001");
        out.put("visible_inside_txn", inside);
        out.put("visible_after_rollback", after);
        check(inside == 1 && after == 0, "rollback discards row");
    }

    void errorRecovery(Map<String, Object> out) throws SQLException {
        try (Statement st = conn.createStatement()) {
            try {
                st.executeQuery("SELECT 1/0").close();
                out.put("error_raised", false);
            } catch (SQLException e) {
                out.put("error_raised", true);
                out.put("error_sqlstate", e.getSQLState());
                out.put("error_message", e.getMessage());
            }
            try (ResultSet rs = st.executeQuery("SELECT 42")) {
                rs.next();
                out.put("after_error_value", rs.getInt(1));
            }
        }
        check(Boolean.TRUE.equals(out.get("error_raised")), "division by zero raised");
        check("22012".equals(out.get("error_sqlstate")), "sqlstate 22012");
        check(Integer.valueOf(42).equals(out.get("after_error_value")), "recovered");
    }

    void txnError(Map<String, Object> out) throws SQLException {
        conn.setAutoCommit(false);
        try (Statement st = conn.createStatement()) {
            try {
                st.executeQuery("SELECT 1/0").close();
            } catch (SQLException e) {
                out.put("first_sqlstate", e.getSQLState());
            }
            try {
                st.executeQuery("SELECT 1").close();
                out.put("aborted_sqlstate", null);
            } catch (SQLException e) {
                out.put("aborted_sqlstate", e.getSQLState());
            }
            conn.rollback();
            try (ResultSet rs = st.executeQuery("SELECT 7")) {
                rs.next();
                out.put("after_rollback_value", rs.getInt(1));
            }
            conn.commit();
        } finally {
            conn.setAutoCommit(true);
        }
        check("22012".equals(out.get("first_sqlstate")), "sqlstate 22012 in txn");
        check("25P02".equals(out.get("aborted_sqlstate")), "txn aborted (25P02)");
        check(Integer.valueOf(7).equals(out.get("after_rollback_value")), "recovered after rollback");
    }

    void preparedError(Map<String, Object> out) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement("SELECT 100 / ?")) {
            int sum = 0;
            for (int i = 1; i <= 6; i++) {
                ps.setInt(1, i);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    sum += rs.getInt(1);
                }
            }
            out.put("server_prepared", ps.unwrap(PGStatement.class).isUseServerPrepare());
            ps.setInt(1, 0);
            try {
                ps.executeQuery().close();
            } catch (SQLException e) {
                out.put("error_sqlstate", e.getSQLState());
            }
            ps.setInt(1, 4);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                out.put("after_error_value", rs.getInt(1));
            }
            out.put("sum", sum);
        }
        check("22012".equals(out.get("error_sqlstate")), "prepared division by zero");
        check(Integer.valueOf(25).equals(out.get("after_error_value")), "prepared recovered");
    }

    void metadataTables(Map<String, Object> out) throws SQLException {
        DatabaseMetaData md = conn.getMetaData();
        List<Object> tables = new ArrayList<>();
        try (ResultSet rs = md.getTables(null, null, TABLE, null)) {
            while (rs.next()) {
                Map<String, Object> t = new LinkedHashMap<>();
                t.put("schema", rs.getString("TABLE_SCHEM"));
                t.put("name", rs.getString("TABLE_NAME"));
                t.put("type", rs.getString("TABLE_TYPE"));
                tables.add(t);
            }
        }
        List<Object> columns = new ArrayList<>();
        try (ResultSet rs = md.getColumns(null, null, TABLE, null)) {
            while (rs.next()) {
                columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
        }
        List<Object> pk = new ArrayList<>();
        try (ResultSet rs = md.getPrimaryKeys(null, null, TABLE)) {
            while (rs.next()) {
                pk.add(rs.getString("COLUMN_NAME"));
            }
        }
        int schemas = 0;
        try (ResultSet rs = md.getSchemas()) {
            while (rs.next()) {
                schemas++;
            }
        }
        out.put("tables", tables);
        out.put("columns", columns);
        out.put("primary_key", pk);
        out.put("schema_count", schemas);
        check(tables.size() == 1, "getTables found the temp table once");
        check(columns.size() == 5, "getColumns found 5 columns");
    }

    // ---------------------------------------------------------------- minimal JSON output

    static void emit(Map<String, Object> obj) {
        StringBuilder sb = new StringBuilder("PROBE ");
        json(sb, obj);
        System.out.println(sb);
        System.out.flush();
    }

    static void json(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof Boolean || v instanceof Integer || v instanceof Long) {
            sb.append(v);
        } else if (v instanceof Map) {
            sb.append('{');
            Iterator<? extends Map.Entry<?, ?>> it = ((Map<?, ?>) v).entrySet().iterator();
            while (it.hasNext()) {
                Map.Entry<?, ?> e = it.next();
                str(sb, String.valueOf(e.getKey()));
                sb.append(':');
                json(sb, e.getValue());
                if (it.hasNext()) {
                    sb.append(',');
                }
            }
            sb.append('}');
        } else if (v instanceof List) {
            sb.append('[');
            Iterator<?> it = ((List<?>) v).iterator();
            while (it.hasNext()) {
                json(sb, it.next());
                if (it.hasNext()) {
                    sb.append(',');
                }
            }
            sb.append(']');
        } else {
            str(sb, String.valueOf(v));
        }
    }

    static void str(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20 || c > 0x7e) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
