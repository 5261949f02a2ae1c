#!/usr/bin/perl
# doxygen-filter.pl — Doxygen INPUT_FILTER for ppool's public headers.
#
# The headers are written to be read as text, in the kernel-doc manner:
#
#     /**
#      * pp_submit - schedule fn(arg) and return its future at once.
#      * @ex, @fn: the executor and the task function (non-NULL).
#      * ...
#      * Returns 0, -EINVAL, ...
#      */
#     int field;     /* what the field is */
#
# Doxygen reads "@fn" and "@code" as its own commands and ignores plain
# trailing comments, so this filter rewrites that syntax (never the text) on
# the fly for *.h files; everything else passes through unchanged:
#
#   - "@a, @b: text" at the start of a doc-comment line  -> "- <tt>a</tt>, <tt>b</tt>:
#     text", items of a list headed "Parameters"
#   - "@name" anywhere else in a doc comment              -> "\p name"
#   - "Returns ..." at the start of a doc-comment line    -> "\returns ..."
#   - "pp_name - " / "pp_a / pp_b - " opening a comment   -> removed (Doxygen
#     shows the name); the comment is repeated in front of each function it
#     names whose declaration has no comment of its own
#   - "decl;  /* text */" and "ENUMERATOR, /* text */"    -> "/**< text */"
#
# Line numbers are preserved, so Doxygen's warnings point at the header.
use strict;
use warnings;

my $file = $ARGV[0] // '';
local $/;
my $src = <>;
$src = '' unless defined $src;
if ($file =~ /\.md\z/) {
    print markdown($src);
    exit 0;
}
if ($file !~ /\.h\z/) {
    print $src;
    exit 0;
}

# docs/guide.md is written for GitHub. For Doxygen: give every heading below
# the title the anchor GitHub would give it (so "[...](#anchor)" links work in
# both), turn links to examples/ into links to Doxygen's example pages, and
# links to other files of the repository into their plain text.
sub markdown {
    my ($text) = @_;
    my ($out, $fence, %seen) = ('', 0);
    for my $line (split /^/, $text) {
        if ($line =~ /^\s*```/) {
            $fence = !$fence;
        } elsif (!$fence && $line =~ /^(#{2,6})[ \t]+(.*?)[ \t]*$/) {
            my ($hashes, $title) = ($1, $2);
            (my $slug = lc $title) =~ s/[^a-z0-9 _-]//g;
            $slug =~ tr/ /-/;
            $slug .= '-' . $seen{$slug} if $seen{$slug}++;
            $line = "$hashes $title {#$slug}\n";
        } elsif (!$fence) {
            $line =~ s{\[([^\]]*)\]\((?:\.\./)?examples/([\w.-]+\.c)\)}{my ($t, $f) = ($1, $2); $t =~ tr{`}{}d; "\@ref $f \"$t\""}ge;
            $line =~ s{(?<!!)\[([^\]]*)\]\((?![#a-z]+:|#)[^)]*\)}{$1}g;
        }
        $out .= $line;
    }
    return $out;
}

# Rewrite the body of a doc comment (the text between "/**" and "*/").
sub doc_body {
    my ($body) = @_;
    # Parameter lines become a "Parameters" list. (Not \param: the headers
    # list only the parameters that need words, and Doxygen 1.9.4 reports a
    # function whose \param list is incomplete as a documentation error.)
    my $first = 1;
    $body =~ s{(^[^\n]*\n)?^([ \t]*\*?[ \t]*)\@(\w+)((?:[ \t]*,[ \t]*\@\w+)*):[ \t]*}{
        my ($prev, $lead, $name, $more) = ($1 // '', $2, $3, $4);
        my @names = ($name, $more =~ /\@(\w+)/g);
        if ($first) {
            # The heading goes at the end of the line before, so that no line
            # moves.
            $prev =~ s{[ \t]*\n\z}{ \\par Parameters\n};
            $first = 0;
        }
        $prev . $lead . '- ' . join(', ', map { "<tt>$_</tt>" } @names) . ': '
    }gme;
    # Inline references to parameters or fields.
    $body =~ s{(?<![\w\\\@])\@(\w+)}{\\p $1}g;
    # The return paragraph.
    $body =~ s{^([ \t]*\*[ \t]*)Returns\b}{$1\\returns}gm;
    return $body;
}

# The functions a kernel-doc comment names in its opening "a / b - ".
sub named {
    my ($body) = @_;
    if ($body =~ m{\A[ \t]*(?:\n[ \t]*\*)?[ \t]*((?:pp_\w+)(?:[ \t]*/[ \t]*pp_\w+)*)[ \t]+-[ \t]}) {
        return split m{[ \t]*/[ \t]*}, $1;
    }
    return ();
}

sub strip_name {
    my ($body) = @_;
    $body =~ s{\A([ \t]*(?:\n[ \t]*\*)?[ \t]*)(?:pp_\w+)(?:[ \t]*/[ \t]*pp_\w+)*[ \t]+-[ \t]+}{$1};
    return $body;
}

my $out = '';
my @repeat;    # [name, comment text] for comments that name several functions
pos($src) = 0;
while ($src =~ m{\G(.*?)(/\*(.*?)\*/)}gcs) {
    my ($code, $whole, $body) = ($1, $2, $3);
    $out .= $code;
    my $line_before = $out =~ m{([^\n]*)\z} ? $1 : '';
    if ($body =~ m{\A\*(?![*/])}s) {
        # A doc comment "/** ... */".
        my $inner = substr($body, 1);
        my @names = named($inner);
        my $text = '/**' . doc_body(strip_name($inner)) . '*/';
        $out .= $text;
        # Remember it for the functions it names (on one line, so that
        # line numbers do not move when it is repeated).
        (my $flat = $text) =~ s{\n[ \t]*(?:\*(?!/))?}{ }g;
        push @repeat, [$_, $flat] for @names;
    } elsif ($line_before =~ m{[;,][ \t]*\z} && $line_before =~ m{\S}) {
        # A trailing comment on a member or an enumerator.
        $out .= '/**<' . doc_body($body) . '*/';
    } else {
        $out .= $whole;
    }
}
$out .= substr($src, pos($src) // 0);

# A comment that names a function documents it even when it is not right in
# front of it ("pp_terminate_workers / pp_kill_workers - ...", or a typedef
# between the comment and the function): repeat it before every named
# declaration that is not directly preceded by a comment.
for my $r (@repeat) {
    my ($name, $flat) = @$r;
    $out =~ s{^([^\n]*)\n(PP_API[^\n]*\b\Q$name\E[ \t]*\()}{
        my ($prev, $decl) = ($1, $2);
        $prev =~ m{\*/[ \t]*\z} ? "$prev\n$decl" : "$prev\n$flat $decl"
    }me;
}
print $out;
