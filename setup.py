from setuptools import find_packages, setup

# schemas/ and config/ stay at the top of the repository; erapi/schemas and erapi/config_examples are symbolic
# links to them, so that the wheel and the sdist carry them as package data of erapi, read at run time through
# importlib.resources (erapi/packaged.py) from a checkout and from an installed wheel alike.
DATA_PACKAGES = {
    "erapi.schemas": ["*.json"],
    "erapi.schemas.catalog": ["*.json"],
    "erapi.schemas.responses": ["*.json"],
    "erapi.config_examples": ["*.toml"],
    "erapi.explorer_assets": ["*.html", "*.js", "*.css", "*.txt"],  # the explorer page; Cytoscape.js from npm
    "erapi.ontologies": ["*.ttl.gz", "*.md"],  # Brick 1.0's Brick.ttl, for erapi catalog build's older names
}

setup(
    name="erapi",
    version="0.1.0",
    description="Asynchronous Entity-Relationship service for Brick building metadata",
    python_requires=">=3.11",
    packages=[*find_packages(include=["erapi", "erapi.*", "storage_plugins", "storage_plugins.*"]), *DATA_PACKAGES],
    # py.typed: third-party storage plugins type-check against storage_plugins.base (PEP 561)
    package_data={"erapi": ["py.typed"], "storage_plugins": ["py.typed"], **DATA_PACKAGES},
    install_requires=[
        "aiohttp>=3.14.3",
        "PyJWT[crypto]>=2.13",
        "structlog>=24.1",
        "orjson>=3.10",
        "jsonschema-rs>=0.29",
        "sortedcontainers>=2.4",  # the memory plugin's id order: O(log n) inserts, so writes do not slow as data grows
        "swagger-ui-py>=25.7",  # Swagger UI 5 assets for /apollo/docs, served by the service itself
        "prometheus-client>=0.20",  # /metrics; its multiprocess mode sums the processes of `erapi serve --workers N`
        "rdflib>=7.1.4",  # the Brick export (imported on the first export, never at start-up) and erapi import
        "pyoxigraph>=0.5",  # erapi import's parser (lenient mode), three times rdflib's speed on Turtle
        "rich>=13.7",  # erapi import's progress bar
        "rapidfuzz>=3.0",  # the catalog's "closest known names": a quick bound that spares most of difflib's work
        # erapi serve --workers N: gunicorn's arbiter runs the processes with aiohttp's worker class
        # (25.1: its control socket can be turned off)
        "gunicorn>=25.1",
    ],
    extras_require={
        "mongodb": ["pymongo>=4.13"],
        # development only: `erapi catalog build` and bench/brick_compare.py; the service never imports them
        "catalog": ["brickschema>=0.7.9", "rdflib>=7.1.4"],
        "test": [
            "pytest>=8.2",
            "pytest-aiohttp>=1.1",
            "pytest-asyncio>=0.24",
            "jsonschema>=4.23",
            "pymongo>=4.13",
            # the second MongoDB server of the tests (.ci/secantusdb.sh); only pre-releases exist, which this
            # lower bound, itself a pre-release, lets pip choose without --pre
            "secantusdb>=0.7.0b3",
            "hypothesis>=6.100",
            "schemathesis>=4,<5",
            "openapi-spec-validator>=0.7",
            "rdflib>=7.1.4",  # tests/test_graph_brick.py asks its questions of the source model in SPARQL
            "brickschema>=0.7.9",  # ... with the Brick 1.4 ontology for rdfs:subClassOf
            # client generators that must accept the OpenAPI document (tests/test_generated_client.py, .ci/)
            "openapi-python-client>=0.29",
            "openapi-generator-cli>=7.26",
        ],
    },
    entry_points={
        "console_scripts": ["erapi=erapi.cli:main"],
        "erapi.storage_plugins": [
            "memory=storage_plugins.memory:MemoryStorage",
            "mongodb=storage_plugins.mongodb:MongoStorage",
        ],
    },
)
