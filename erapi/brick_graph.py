"""An RDF file as ``erapi import`` reads it: its statements by subject, terms as plain Python values.

Oxigraph's parser (pyoxigraph, Rust) reads Turtle, N-Triples, N3, RDF/XML, TriG and N-Quads straight into this
index, in its lenient mode, which like rdflib takes IRIs that are not quite valid (``...#SUPFLO_AVG_%``); rdflib
is then not even imported. It reads the other formats (JSON-LD, ...), and its graph is copied into the index.
EBU3B's 14,572 statements: read in 0.05-0.1 s, where an rdflib graph filled from Oxigraph's terms took 0.5 s and
rdflib's import another 0.13 s (docs/PERFORMANCE.md, "erapi import").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Union

XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
# rdflib's format names by file extension, for the formats Oxigraph reads (pyoxigraph.RdfFormat's names);
# JSON-LD stays with rdflib, which reads every JSON-LD form the service's export and Brick's tools write
OXIGRAPH_FORMATS = {"ttl": "TURTLE", "turtle": "TURTLE", "nt": "N_TRIPLES", "nt11": "N_TRIPLES", "n3": "N3",
                    "rdf": "RDF_XML", "owl": "RDF_XML", "xml": "RDF_XML", "trig": "TRIG", "nq": "N_QUADS",
                    "nquads": "N_QUADS"}
# prefixes for the kinds of statements the import summary counts, besides those the file declares
KNOWN_PREFIXES = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
                  "rdfs": "http://www.w3.org/2000/01/rdf-schema#", "owl": "http://www.w3.org/2002/07/owl#",
                  "xsd": "http://www.w3.org/2001/XMLSchema#", "skos": "http://www.w3.org/2004/02/skos/core#",
                  "sh": "http://www.w3.org/ns/shacl#", "brick": "https://brickschema.org/schema/Brick#",
                  "ref": "https://brickschema.org/schema/Brick/ref#", "tag": "https://brickschema.org/schema/BrickTag#",
                  "unit": "http://qudt.org/vocab/unit/", "qudt": "http://qudt.org/schema/qudt/",
                  "rec": "https://w3id.org/rec#", "s223": "http://data.ashrae.org/standard223#"}
NAMESPACE_END = re.compile(r"^(.*[#/])([^#/]+)$")


class Blank(NamedTuple):
    """A blank node (its label in the file); an IRI is a ``str``."""

    label: str


class Literal(NamedTuple):
    value: str
    language: str | None = None
    datatype: str | None = None  # None: a plain literal (xsd:string)


Term = Union[str, Blank, Literal]


def order(term: Term) -> tuple:
    """A sort key for terms of every kind, in rdflib's order of kinds: blank nodes, IRIs, literals."""
    if isinstance(term, str):
        return 1, term, "", ""
    if isinstance(term, Blank):
        return 0, term.label, "", ""
    return 2, term.value, term.datatype or "", term.language or ""


class Triples:
    """A set of statements indexed by subject, in the order first read."""

    def __init__(self) -> None:
        self.about: dict[Term, dict[tuple[str, Term], None]] = {}  # subject -> its (predicate, value) pairs
        self.prefixes: dict[str, str] = dict(KNOWN_PREFIXES)

    def add(self, subject: Term, predicate: str, value: Term) -> None:
        pairs = self.about.get(subject)
        if pairs is None:  # not setdefault: that would build a dict for every statement
            pairs = self.about[subject] = {}
        pairs[predicate, value] = None

    def __len__(self) -> int:
        return sum(map(len, self.about.values()))

    def __iter__(self) -> Iterator[tuple[Term, str, Term]]:
        for subject, pairs in self.about.items():
            for predicate, value in pairs:
                yield subject, predicate, value

    def predicate_objects(self, subject: Term) -> Iterator[tuple[str, Term]]:
        return iter(self.about.get(subject, ()))

    def value(self, subject: Term, predicate: str) -> Term | None:
        return next((value for p, value in self.predicate_objects(subject) if p == predicate), None)

    def qname(self, iri: str) -> str:
        """``prefix:name`` with a prefix the file declares or a well-known one, else ``<iri>``."""
        found = NAMESPACE_END.match(iri)
        if found:
            prefix = next((p for p, namespace in self.prefixes.items() if namespace == found.group(1)), None)
            if prefix is not None:
                return f"{prefix}:{found.group(2)}"
        return f"<{iri}>"


def read_file(path: Path) -> Triples:
    """The file's statements (its named graphs, if any, merged into one); the format from its name, Turtle when
    the name does not tell."""
    extension = path.suffix.lstrip(".").lower()
    if extension not in OXIGRAPH_FORMATS:
        from rdflib.util import guess_format

        rdflib_format = guess_format(str(path))
        if rdflib_format is not None:
            return from_rdflib(_read_with_rdflib(path, rdflib_format))
    return _read_with_oxigraph(path, OXIGRAPH_FORMATS.get(extension, "TURTLE"))


def _read_with_oxigraph(path: Path, format_name: str) -> Triples:
    import pyoxigraph

    triples = Triples()
    quads = pyoxigraph.parse(path=str(path), format=getattr(pyoxigraph.RdfFormat, format_name), lenient=True)
    term, named_node = _oxigraph_term(pyoxigraph), pyoxigraph.NamedNode
    add = triples.add
    for quad in quads:
        subject, value = quad.subject, quad.object  # mostly IRIs: their value at once, without a call
        add(subject.value if type(subject) is named_node else term(subject), quad.predicate.value,
            value.value if type(value) is named_node else term(value))
    triples.prefixes.update(quads.prefixes)
    return triples


def _oxigraph_term(pyoxigraph: Any) -> Any:
    """Oxigraph's terms as this module's (a literal typed xsd:string as a plain one, as rdflib reads it)."""
    named_node, blank_node = pyoxigraph.NamedNode, pyoxigraph.BlankNode

    def convert(term: Any) -> Term:
        if isinstance(term, named_node):
            return term.value
        if isinstance(term, blank_node):
            return Blank(term.value)
        if not isinstance(term, pyoxigraph.Literal):  # an RDF-star quoted statement: kept as an opaque node
            return Blank(str(term))
        if term.language:
            return Literal(term.value, term.language)
        datatype = term.datatype.value
        return Literal(term.value, None, None if datatype == XSD_STRING else datatype)

    return convert


def _read_with_rdflib(path: Path, rdflib_format: str) -> Any:
    from rdflib import Graph

    return Graph().parse(str(path), format=rdflib_format)


def from_rdflib(graph: Any) -> Triples:
    """An rdflib graph's statements (and the prefixes bound in it) as Triples."""
    triples = Triples()
    for subject, predicate, value in graph:
        triples.add(rdflib_term(subject), str(predicate), rdflib_term(value))
    triples.prefixes.update({prefix: str(namespace) for prefix, namespace in graph.namespaces() if prefix})
    return triples


def rdflib_term(term: Any) -> Term:
    from rdflib import BNode
    from rdflib import Literal as RdflibLiteral

    if isinstance(term, RdflibLiteral):
        return Literal(str(term), term.language, str(term.datatype) if term.datatype is not None else None)
    if isinstance(term, BNode):
        return Blank(str(term))
    return str(term)
