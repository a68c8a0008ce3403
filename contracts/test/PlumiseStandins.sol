// SPDX-License-Identifier: MIT
// Small contracts that behave like the Plumise precompiles and the RewardPool, for tests on anvil.
// They are installed with anvil_setCode (runtime code only: no constructors, no immutables).
pragma solidity ^0.8.20;

interface IAgentRegister {
    function isAgent(address agent) external view returns (bool);
}

interface IAgentHeartbeat {
    function lastHeartbeat(address agent) external view returns (uint256);
}

/// Stand-in for precompile 0x21 (agentRegister).
/// Calldata: name[32] ‖ modelHash[32] ‖ uint256 capCount ‖ capCount × 32-byte capabilities.
contract AgentRegisterStandin {
    struct Agent {
        bytes32 name;
        bytes32 modelHash;
        uint256 capCount;
        uint256 registeredAt;
    }

    mapping(address => bool) public isAgent;
    mapping(address => Agent) internal agents;
    mapping(address => bytes32[]) internal caps;
    address[] internal list;

    event AgentRegistered(address indexed agent, bytes32 name, bytes32 modelHash, uint256 capCount);

    fallback() external {
        require(msg.data.length >= 96, "calldata shorter than 96 bytes");
        require(!isAgent[msg.sender], "agent already registered");
        bytes32 name = bytes32(msg.data[0:32]);
        bytes32 modelHash = bytes32(msg.data[32:64]);
        uint256 capCount = uint256(bytes32(msg.data[64:96]));
        require(capCount <= 64, "too many capabilities");
        require(msg.data.length == 96 + capCount * 32, "capCount does not match calldata length");
        require(name != bytes32(0), "empty name");
        for (uint256 i = 0; i < capCount; i++) {
            caps[msg.sender].push(bytes32(msg.data[96 + i * 32:128 + i * 32]));
        }
        isAgent[msg.sender] = true;
        agents[msg.sender] = Agent(name, modelHash, capCount, block.timestamp);
        list.push(msg.sender);
        emit AgentRegistered(msg.sender, name, modelHash, capCount);
    }

    function agentCount() external view returns (uint256) {
        return list.length;
    }

    function agentAt(uint256 i) external view returns (address) {
        return list[i];
    }

    function getAgent(address agent)
        external
        view
        returns (bytes32 name, bytes32 modelHash, bytes32[] memory capabilities, uint256 registeredAt)
    {
        Agent storage a = agents[agent];
        return (a.name, a.modelHash, caps[agent], a.registeredAt);
    }
}

/// Stand-in for precompile 0x22 (agentHeartbeat): empty calldata, heartbeat for msg.sender.
contract AgentHeartbeatStandin {
    mapping(address => uint256) public lastHeartbeat;
    mapping(address => uint256) public heartbeatCount;

    event Heartbeat(address indexed agent, uint256 time);

    fallback() external {
        require(msg.data.length == 0, "heartbeat takes no calldata");
        require(IAgentRegister(address(0x21)).isAgent(msg.sender), "not an agent");
        lastHeartbeat[msg.sender] = block.timestamp;
        heartbeatCount[msg.sender] += 1;
        emit Heartbeat(msg.sender, block.timestamp);
    }
}

/// Stand-in for precompile 0x20 (verifyInference): abi.encode(bytes32,bytes32,bytes32,address,uint256).
contract VerifyInferenceStandin {
    uint256 public verifiedCount;
    mapping(address => uint256) public tokensVerified;

    event InferenceVerified(address indexed agent, bytes32 modelHash, bytes32 inputHash, bytes32 outputHash, uint256 tokenCount);

    fallback() external {
        require(msg.data.length == 160, "calldata must be 160 bytes");
        (bytes32 modelHash, bytes32 inputHash, bytes32 outputHash, address agent, uint256 tokenCount) =
            abi.decode(msg.data, (bytes32, bytes32, bytes32, address, uint256));
        require(agent == msg.sender, "agent is not the sender");
        require(tokenCount > 0, "tokenCount is zero");
        verifiedCount += 1;
        tokensVerified[agent] += tokenCount;
        emit InferenceVerified(agent, modelHash, inputHash, outputHash, tokenCount);
    }
}

/// RewardPool at 0x…1000 with the safe ABI subset; pending rewards are set by the test.
contract RewardPoolStandin {
    mapping(address => uint256) internal pending;
    mapping(uint256 => bool) public epochDistributed;
    mapping(address => uint256[4]) internal contributions;

    event RewardClaimed(address indexed agent, uint256 amount);

    receive() external payable {}

    /// Test-only: sets the pending reward of `agent` (fund the pool with anvil_setBalance).
    function setPendingReward(address agent, uint256 amount) external {
        pending[agent] = amount;
    }

    function getPendingReward(address agent) external view returns (uint256) {
        return pending[agent];
    }

    function getCurrentEpoch() external view returns (uint256) {
        return block.number / 1200;
    }

    function getContribution(address agent)
        external
        view
        returns (uint256 taskCount, uint256 uptimeSeconds, uint256 responseScore, uint256 lastUpdated)
    {
        uint256[4] storage c = contributions[agent];
        return (c[0], c[1], c[2], c[3]);
    }

    function claimReward() external {
        uint256 amount = pending[msg.sender];
        require(amount > 0, "No rewards");
        require(IAgentRegister(address(0x21)).isAgent(msg.sender), "Not registered");
        pending[msg.sender] = 0;
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        require(ok, "Transfer failed");
        emit RewardClaimed(msg.sender, amount);
    }
}

/// Optional AgentRegistry contract (reads the 0x21 and 0x22 stand-ins).
contract AgentRegistryStandin {
    function isRegistered(address agent) public view returns (bool) {
        return IAgentRegister(address(0x21)).isAgent(agent);
    }

    function isActive(address agent) public view returns (bool) {
        uint256 hb = IAgentHeartbeat(address(0x22)).lastHeartbeat(agent);
        return isRegistered(agent) && hb != 0 && block.timestamp - hb <= 300;
    }

    function getAgent(address agent)
        external
        view
        returns (
            address wallet,
            bytes32 nodeId,
            string memory metadata,
            uint256 registeredAt,
            uint256 lastHeartbeat,
            uint8 status,
            uint256 stake
        )
    {
        if (!isRegistered(agent)) return (address(0), bytes32(0), "", 0, 0, 1, 0);
        uint256 hb = IAgentHeartbeat(address(0x22)).lastHeartbeat(agent);
        return (agent, bytes32(uint256(uint160(agent))), "{}", 0, hb, isActive(agent) ? 0 : 1, 0);
    }
}
