/* ast.c: syntax tree nodes and the entry point of the parser.
 *
 * parse_file() runs the flex scanner and the bison parser over a file's text held in memory and
 * returns the tree; the tree's nodes and strings live in the caller's arena.
 */
#include "frontend/frontend.h"
#include "parser.tab.h"
#include "lexer.yy.h"

Ast *ast_new(ParseState *ps, AstKind k, SrcLoc loc)
{
    Ast *n = arena_alloc(ps->arena, sizeof *n);
    n->kind = k;
    n->loc = loc;
    return n;
}

Ast *ast_append(Ast *head, Ast *item)
{
    /* the head keeps its list's last element, so that a file of n statements parses in O(n) */
    Ast *end = item;
    while (end && end->next)
        end = end->next;
    if (!head) {
        if (item)
            item->tail = end;
        return item;
    }
    Ast *t = head->tail ? head->tail : head;
    while (t->next)
        t = t->next;
    t->next = item;
    head->tail = end ? end : t;
    return head;
}

int ast_count(const Ast *list)
{
    int n = 0;
    for (; list; list = list->next)
        n++;
    return n;
}

Ast *parse_file(const char *path, const char *text, Arena *arena, Diag *d, int *file_index)
{
    ParseState ps = {.arena = arena, .diag = d};
    ps.file = diag_add_file(d, path, text);
    if (file_index)
        *file_index = ps.file;
    int before = diag_errors(d);
    yyscan_t scanner;
    yylex_init_extra(&ps, &scanner);
    YY_BUFFER_STATE buf = yy_scan_string(text, scanner);
    yyparse(scanner, &ps);
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    return diag_errors(d) > before ? NULL : ps.root;
}
