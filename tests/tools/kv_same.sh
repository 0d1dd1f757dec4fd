# kv_same.sh: sourced by tests/models/kv_*.sh.
same() { # same NATIVE INTERP: pos lines equal, logits within 1e-5 relative to the row's largest
    awk 'NR == FNR { ref[FNR] = $0; n = FNR; next }
         { if (!(FNR in ref)) { print "extra line " FNR; bad = 1; exit }
           split(ref[FNR], r, " ")
           if ($1 == "pos") { if ($0 != ref[FNR]) { print "line " FNR ": " $0 " != " ref[FNR]; bad = 1 } ; next }
           mx = 0; e = 0
           for (i = 3; i <= NF; i++) { a = r[i] < 0 ? -r[i] : r[i]; if (a > mx) mx = a
                                       d = $i - r[i]; if (d < 0) d = -d; if (d > e) e = d }
           if (e > 1e-5 * mx) { print "line " FNR " (" $1 " " $2 "): error " e " of " mx; bad = 1 } }
         END { if (FNR != n) { print "native has " FNR " lines, the interpreter " n; bad = 1 } ; exit bad }' "$2" "$1"
}
