// Copied UNCHANGED from the streaming client's seed document (004_d4acfc37eb0270a4.txt, file lib/pipecat-chat-client.js); below this line it must stay byte-for-byte identical to the seed.
const axios = require('axios');
const WebSocket = require('ws');
const EventEmitter = require('events');

class PipecatChatClient extends EventEmitter {
  constructor(baseUrl) {
    super();
    this.baseUrl = baseUrl; // e.g., 'http://your-azure-vm:8002'
    this.sessionId = null;
    this.ws = null;
    this.isConnected = false;
  }

  /**
   * Create a new chat session
   * @param {string} userId - Optional user identifier
   * @param {object} metadata - Optional metadata
   * @returns {Promise<string>} Session ID
   */
  async createSession(userId = null, metadata = {}) {
    try {
      const response = await axios.post(`${this.baseUrl}/api/create-session`, {
        user_id: userId,
        metadata: metadata
      });

      this.sessionId = response.data.session_id;
      console.log('‚úÖ Session created:', this.sessionId);

      return this.sessionId;
    } catch (error) {
      console.error('‚ùå Failed to create session:', error.message);
      throw error;
    }
  }

  /**
   * Connect to WebSocket for real-time chat
   * @returns {Promise<void>}
   */
  connect() {
    return new Promise((resolve, reject) => {
      if (!this.sessionId) {
        reject(new Error('No session ID. Call createSession() first.'));
        return;
      }

      const wsUrl = this.baseUrl.replace('http', 'ws') + `/ws/${this.sessionId}`;
      this.ws = new WebSocket(wsUrl);

      this.ws.on('open', () => {
        this.isConnected = true;
        console.log('‚úÖ WebSocket connected');
        this.emit('connected');
        resolve();
      });

      this.ws.on('message', (data) => {
        try {
          const message = JSON.parse(data);
          this.handleMessage(message);
        } catch (error) {
          console.error('‚ùå Failed to parse message:', error);
        }
      });

      this.ws.on('close', () => {
        this.isConnected = false;
        console.log('üîå WebSocket disconnected');
        this.emit('disconnected');
      });

      this.ws.on('error', (error) => {
        console.error('‚ùå WebSocket error:', error);
        this.emit('error', error);
        reject(error);
      });
    });
  }

  /**
   * Handle incoming messages from server
   */
  handleMessage(message) {
    switch (message.type) {
      case 'status':
        if (message.status === 'typing') {
          this.emit('typing');
        } else if (message.status === 'ready') {
          this.emit('ready');
        }
        break;

      case 'function_called':
        // AI called a function (e.g., knowledge base, price check)
        this.emit('function_called', {
          function_name: message.function_name,
          timestamp: message.timestamp
        });
        break;

      case 'chunk':
        // Real-time streaming chunk
        this.emit('chunk', message.content);
        break;

      case 'complete':
        // Full response received
        this.emit('message', message.full_response);
        break;

      case 'error':
        this.emit('error', new Error(message.error));
        break;

      default:
        console.warn('Unknown message type:', message.type);
    }
  }

  /**
   * Send a message to the AI
   * @param {string} text - Message text
   */
  sendMessage(text) {
    if (!this.isConnected) {
      throw new Error('WebSocket not connected');
    }

    this.ws.send(JSON.stringify({ message: text }));
  }

  /**
   * Get session information
   * @returns {Promise<object>}
   */
  async getSessionInfo() {
    if (!this.sessionId) {
      throw new Error('No active session');
    }

    const response = await axios.get(`${this.baseUrl}/api/session/${this.sessionId}/info`);
    return response.data;
  }

  /**
   * Close session and cleanup
   */
  async disconnect() {
    if (this.ws) {
      this.ws.close();
    }

    if (this.sessionId) {
      try {
        await axios.delete(`${this.baseUrl}/api/session/${this.sessionId}`);
        console.log('‚úÖ Session deleted');
      } catch (error) {
        console.error('‚ö†Ô∏è Failed to delete session:', error.message);
      }
    }

    this.sessionId = null;
    this.isConnected = false;
  }
}

module.exports = PipecatChatClient;
